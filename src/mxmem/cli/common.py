"""What the tool modules share: the tool record, the lazily opened source, C-style number
parsing, and the ``<process-koid>|help`` argument handling of ``vmaps`` and ``vmos``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple, TextIO

from mxmem.cli.options import ATTRIBUTIONS as ATTRIBUTIONS  # the option layer owns it
from mxmem.cli.options import EXIT_USAGE, Grammar, Opt, Wording, parse
from mxmem.model import Level, Process, Snapshot
from mxmem.render.text import safe_text
from mxmem.sources import Advancing, Source, open_source

RunFn = Callable[[Sequence[str], Source, TextIO, TextIO], int]


class Tool(NamedTuple):
    """A command: ``run(args, source, out, err)`` returns the exit code. Errors with a
    Magenta-defined text are written by the tool itself; other failures are raised as
    :class:`~mxmem.errors.MxmemError` and reported by ``cli.main``."""

    name: str
    summary: str
    run: RunFn


class LazySource:
    """A source opened on first use, so ``--help``, usage errors and ``scenarios`` never
    pay for building a world (``scale:100000`` takes a while). ``chosen`` is False when
    the command line named no source (the default, the host): ``treemap`` then reads a
    capture piped to it, as the 2017 tool did."""

    def __init__(self, spec: str, *, chosen: bool = True) -> None:
        self._spec = spec
        self._source: Source | None = None
        self.chosen = chosen

    @property
    def name(self) -> str:
        return self._spec

    def snapshot(
        self, level: Level = Level.FULL, processes: Collection[int] | None = None
    ) -> Snapshot:
        if self._source is None:
            self._source = open_source(self._spec)
        return self._source.snapshot(level, processes)

    def advance(self, seconds: float) -> None:
        """Forward simulated time to the source, if its time is simulated (a LazySource
        is always :class:`~mxmem.sources.Advancing`; what it wraps may not be)."""
        source = self.opened()
        if isinstance(source, Advancing):
            source.advance(seconds)

    def opened(self) -> Source:
        """The source itself, opened now if it was not: what it is, not what a
        LazySource claims to be (always :class:`~mxmem.sources.Advancing`)."""
        if self._source is None:
            self._source = open_source(self._spec)
        return self._source


_C_SPACE = " \t\n\v\f\r"
_DIGITS = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}
ULLONG_MAX = 2**64 - 1


def strtoull(text: str) -> int | None:
    """``strtoull(text, &end, 0)`` when the whole of ``text`` must be a number, as the
    Magenta tools check it (``*end == '\\0'``); ``None`` if it is not one.

    Base 0 means decimal, ``0x`` hex or leading-``0`` octal. Like C, leading white space
    and a sign are accepted, a negative value wraps modulo 2**64 and an overflow gives
    ``ULLONG_MAX``.
    """
    s = text.lstrip(_C_SPACE)
    negative = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s[:2] in ("0x", "0X") and s[2:3] and s[2] in _DIGITS[16]:
        base, digits = 16, s[2:]
    elif s[:1] == "0":
        base, digits = 8, s
    else:
        base, digits = 10, s
    if not digits or not _DIGITS[base].issuperset(digits):
        return None
    value = int(digits, base)
    if value > ULLONG_MAX:
        return ULLONG_MAX
    return (-value) % 2**64 if negative else value


class _ProcessUsage(Wording):
    """vmaps.c's and vmos.cpp's: a wrong number of arguments is the usage line."""

    def operands(self, tool: str, operands: Sequence[str], spec: str) -> str:
        return f"Usage: {tool} <process-koid>|help"


class ProcessArgs(NamedTuple):
    koid: int
    json: bool


def process_args(
    tool: str, args: Sequence[str], out: TextIO, err: TextIO, help_text: str
) -> ProcessArgs | int:
    """Parse ``<process-koid>|help [--json]`` the way vmaps.c/vmos.cpp parse their one
    argument (plus ``-h``, ``--help`` and ``--json``, through the common option layer);
    returns the parsed arguments, or the exit code when the tool is done (help printed,
    or a usage error reported)."""
    usage = f"Usage: {tool} <process-koid>|help"
    grammar = Grammar(
        tool,
        help_text,
        (Opt("json", long="json"),),
        operands=(1, 1),
        after_error="",
        exact_tokens=True,
        wording=_ProcessUsage(),
    )
    parsed = parse(grammar, args, out, err)
    if isinstance(parsed, int):
        return parsed
    arg = parsed.operands[0]
    if arg.lstrip("-") == "help":
        out.write(help_text)
        return 0
    koid = strtoull(arg)
    if koid is None:
        err.write(f'ERROR: "{safe_text(arg)}" is not a number\n{usage}\n')
        return EXIT_USAGE
    return ProcessArgs(koid, "json" in parsed.flags)


FUCHSIA_NO_ASPACE = (
    "this capture has no address spaces, handles or mappings (a Fuchsia memory_monitor"
    " capture records only which VMOs each process references)"
)


def capture_lacks(snapshot: Snapshot, process: Process | None, *, mappings: bool) -> str | None:
    """Why a capture cannot show a process's address space (``mappings``) or its VMO
    references, or ``None`` when it can: a memgraph file has references but no
    addresses; a Fuchsia capture only lists the VMOs each process references."""
    if mappings and not snapshot.has_mappings:
        # Imported here: the capture readers (json, gzip) are no part of a live `ps`.
        from mxmem.sources.capture.memgraph import NO_MAPPINGS_NOTE

        return NO_MAPPINGS_NOTE
    if (
        process is not None
        and process.aspace is None
        and process.handles is None
        and process.vmo_koids is not None
    ):
        return FUCHSIA_NO_ASPACE
    return None


def find_process(
    tool: str, koid: int, source: Source, err: TextIO, *, need_mappings: bool = True
) -> tuple[Snapshot, Process] | int:
    """A full snapshot of one process, or the exit code after reporting it missing or
    without an address space. ``need_mappings=False`` (vmos) also accepts a memgraph
    capture's processes, whose address spaces list mapped VMOs but no addresses."""
    snapshot = source.snapshot(Level.FULL, processes=[koid])
    process = snapshot.processes.get(koid)
    lacking = capture_lacks(snapshot, process, mappings=need_mappings)
    if lacking is not None:
        err.write(f"{tool}: {lacking}\n")
        return 1
    if process is None:
        err.write(
            f"ERROR: couldn't find process with koid {koid}: MX_ERR_NOT_FOUND (-25)\n"
            f"Usage: {tool} <process-koid>|help\n"
        )
        return 1
    if process.unreadable is not None:
        # A live source may be refused a process (another user's, without root).
        err.write(
            f"ERROR: process {koid} cannot be read ({safe_text(process.unreadable)}):"
            " MX_ERR_ACCESS_DENIED (-30)\n"
        )
        return 1
    if process.aspace is None and (snapshot.has_mappings or not process.handles):
        # A process that has exited has no address space left; the kernel answers
        # BAD_STATE to MX_INFO_PROCESS_MAPS/VMOS then.
        err.write(
            f"ERROR: process {koid} has no address space (state {process.state.value}):"
            " MX_ERR_BAD_STATE (-20)\n"
        )
        return 1
    return snapshot, process


def print_notes(tool: str, notes: Sequence[str], err: TextIO) -> None:
    """A source's accuracy caveats, one line each, after the output."""
    for note in notes:
        err.write(f"{tool}: note: {safe_text(note)}\n")


def capture_file(source: Source) -> str | None:
    """The capture file ``source`` reads (``--capture=F``), or None."""
    kind, _, path = source.name.partition(":")
    return path if kind == "capture" and path else None
