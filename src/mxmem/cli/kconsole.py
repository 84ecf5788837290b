"""``mxmem k mx ...``: the Magenta kernel console's diagnostic commands (spec §10), over a
snapshot instead of a live kernel.

The kernel console has one output stream, so everything a console command printed —
tables, the usage, ``process not found!`` — goes to stdout, and the exit status tells
output (0) from a missing or unreadable object (1) or a usage error (2, as in every
tool). A process whose handles or address space the source could not read (another
user's on a Linux host, a kernel thread) is said to be so, in one line, never shown as
an empty table. Arguments are read as the console
read them (``cmd_args.u`` is LK's ``atoul``: decimal, or hex after ``0x``; anything else
reads as 0, so ``k mx ht abc`` looks for process 0).

Commands that change a live kernel — ``mwd`` and ``hwd`` (watchdogs that poll) and
``kill`` — make no sense over a snapshot: they say so on stderr and exit 1.

Our choices where diagnostics.cpp is not recorded in the spec: ``not enough arguments:``
precedes the usage whenever a required argument is missing (the console printed it only
for a bare ``mx``); an unknown subcommand prints ``unrecognized subcommand '<name>'`` and
an unknown ``vmos`` option ``unknown option <arg>`` before the usage; ``k`` followed by
anything but ``mx`` prints LK's ``command not found``; ``htinfo`` prints only the
``outstanding handles:`` total (the handle arena's internals are not in a snapshot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mxmem.cli.common import Tool, capture_lacks, print_notes
from mxmem.cli.options import EXIT_USAGE, Grammar, parse
from mxmem.model import Level, Platform, Process, Snapshot
from mxmem.render.kconsole import (
    USAGE,
    write_all_vmos,
    write_aspace,
    write_handles,
    write_jobs,
    write_process_vmos,
    write_ps,
    write_ps_key,
)
from mxmem.render.kconsole_linux import write_linux_ps, write_linux_ps_key
from mxmem.render.text import safe_text
from mxmem.sources import Source

NOT_ENOUGH = "not enough arguments:\n"
NOT_FOUND = "process not found!\n"

# Why the commands that act on a live kernel are refused.
_LIVE_ONLY = {
    "mwd": "the memory watchdog polls a live kernel every second; a snapshot does not change",
    "hwd": "the handle watchdog polls a live kernel every second; a snapshot does not change",
    "kill": "killing a process needs a live kernel; a snapshot cannot be changed",
}

_M64 = (1 << 64) - 1


def atoul(text: str) -> int:
    """LK's ``atoul``: hex digits after a leading ``0x``, else decimal digits, stopping
    at the first other character (so ``"12ab"`` is 12 and ``"abc"`` is 0)."""
    if text.startswith("0x"):
        digits, base = text[2:], 16
        valid = set("0123456789abcdefABCDEF")
    else:
        digits, base = text, 10
        valid = set("0123456789")
    value = 0
    for ch in digits:
        if ch not in valid:
            break
        value = (value * base + int(ch, base)) & _M64
    return value


def _usage(out: TextIO, prefix: str = "") -> int:
    out.write(prefix + USAGE)
    return EXIT_USAGE


def _process(snapshot: Snapshot, koid: int, out: TextIO) -> Process | None:
    process = snapshot.processes.get(koid)
    if process is None:
        out.write(NOT_FOUND)
    return process


def _unseen(process: Process, *, handles: bool, aspace: bool) -> str | None:
    """Why the source could not show the process's handle table (``handles``) or address
    space (``aspace``), or ``None`` when it has what is asked for."""
    where = f"process [{process.koid}]"
    if process.unreadable is not None:
        return f"{where} cannot be read ({safe_text(process.unreadable)})"
    if process.kernel_thread:
        return f"{where} is a kernel thread: it has no handles and no user address space"
    if handles and process.handles is None:
        return f"{where}: its handle table cannot be read"
    if aspace and process.aspace is None and process.handles is None:
        return f"{where}: its handles and address space cannot be read"
    return None


def _vmos(args: Sequence[str], source: Source, out: TextIO) -> int:
    unit = ""
    if len(args) >= 2:
        option = args[1]
        if not option.startswith("-u"):
            return _usage(out, f"unknown option {safe_text(option)}\n")
        unit = option[2:3]  # one character, as the console takes it
    target = args[0]
    if target in ("all", "hidden"):
        snapshot = source.snapshot(Level.FULL)
        write_all_vmos(snapshot, out, hidden_only=target == "hidden", unit=unit)
        return 0
    koid = atoul(target)
    snapshot = source.snapshot(Level.FULL, processes=[koid])
    process = _process(snapshot, koid, out)
    if process is None:
        return 1
    unseen = _unseen(process, handles=False, aspace=True)
    if unseen is not None:
        out.write(f"{unseen}\n")
        return 1
    write_process_vmos(process, snapshot.vmos, out, unit)
    return 0


def _asd(target: str, source: Source, out: TextIO, err: TextIO) -> int:
    # Reference counts come from the whole system (handles of every process).
    snapshot = source.snapshot(Level.FULL)
    if target == "kernel":
        # What the source could not see of the kernel address space (e.g. vmallocinfo
        # without root), after the dump, on stderr like every tool's notes.
        notes = snapshot.kernel_aspace_notes
        if snapshot.kernel_aspace is None:
            out.write("kernel address space not available from this source\n")
            print_notes("k", notes, err)
            return 1
        write_aspace(snapshot, snapshot.kernel_aspace, out)
        print_notes("k", notes, err)
        return 0
    process = _process(snapshot, atoul(target), out)
    if process is None:
        return 1
    lacking = capture_lacks(snapshot, process, mappings=True)
    if lacking is not None:
        err.write(f"k mx asd: {lacking}\n")
        return 1
    unseen = _unseen(process, handles=False, aspace=True)
    if unseen is not None:
        out.write(f"{unseen}\n")
        return 1
    if process.aspace is None:
        # An exited process has no address space left (the kernel would have crashed).
        out.write(f"process [{process.koid}] has no address space\n")
        return 1
    write_aspace(snapshot, process.aspace, out, process=process)
    return 0


def _htinfo(source: Source, out: TextIO) -> int:
    snapshot = source.snapshot(Level.FULL)
    total = sum(len(p.handles or ()) for p in snapshot.processes.values())
    out.write(f"outstanding handles: {total}\n")
    return 0


# Subcommands and how many arguments after the subcommand each needs.
_NEEDS = {
    "ps": 0,
    "jobs": 0,
    "ht": 1,
    "vmos": 1,
    "asd": 1,
    "htinfo": 0,
    # The watchdogs' limits are optional; kill needs its pid.
    "mwd": 0,
    "hwd": 0,
    "kill": 1,
}


def mx(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    """``mx <subcommand> ...`` (``args`` excludes ``mx``)."""
    if not args:
        return _usage(out, NOT_ENOUGH)
    cmd, rest = args[0], args[1:]
    if cmd not in _NEEDS:
        return _usage(out, f"unrecognized subcommand '{safe_text(cmd)}'\n")
    if len(rest) < _NEEDS[cmd]:
        return _usage(out, NOT_ENOUGH)
    if cmd in _LIVE_ONLY:
        err.write(f"k mx {cmd}: {_LIVE_ONLY[cmd]}\n")
        return 1
    if cmd == "ps":
        # A Linux system's handles are file descriptors: ``mx ps`` counts them by kind
        # rather than by Magenta's handle types (whatever source read the snapshot).
        if len(rest) == 1 and rest[0] == "help":
            linux = source.snapshot(Level.KMEM).platform is Platform.LINUX
            (write_linux_ps_key if linux else write_ps_key)(out)
        else:
            snapshot = source.snapshot(Level.FULL)
            linux = snapshot.platform is Platform.LINUX
            (write_linux_ps if linux else write_ps)(snapshot, out)
        return 0
    if cmd == "jobs":
        write_jobs(source.snapshot(Level.TASKS), out)
        return 0
    if cmd == "ht":
        koid = atoul(rest[0])
        snapshot = source.snapshot(Level.FULL, processes=[koid])
        process = _process(snapshot, koid, out)
        if process is None:
            return 1
        lacking = capture_lacks(snapshot, process, mappings=False)
        if lacking is not None:
            err.write(f"k mx ht: {lacking}\n")
            return 1
        unseen = _unseen(process, handles=True, aspace=False)
        if unseen is not None:
            out.write(f"{unseen}\n")
            return 1
        write_handles(process, out)
        return 0
    if cmd == "vmos":
        return _vmos(rest, source, out)
    if cmd == "asd":
        return _asd(rest[0], source, out, err)
    # htinfo takes no arguments.
    if rest:
        return _usage(out)
    return _htinfo(source, out)


# The console's words are operands (``-u?`` too); -h, --help and a misplaced source
# option are the common layer's.
GRAMMAR = Grammar("k", USAGE, operands=(0, None), exact_tokens=True)


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    args = parsed.operands
    if not args:
        return _usage(out, NOT_ENOUGH)
    if args[0] != "mx":
        # The console knows many commands; `mx` is the only one mxmem has.
        return _usage(out, "command not found\n")
    return mx(args[1:], source, out, err)


TOOL = Tool("k", "the kernel console's `mx` commands: ps, jobs, ht, vmos, asd", run)
