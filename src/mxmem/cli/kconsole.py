"""``mxmem k mx ...``: the Magenta kernel console's diagnostic commands (spec §10), over a
snapshot instead of a live kernel.

The kernel console had one output stream; mxmem's ``k`` has two, as every tool: the
tables go to stdout, and the usage, ``process not found!`` and every other error to
stderr (the spec pins their words, not their stream), and the exit status tells output
(0) from a missing or unreadable object (1) or a usage error (2, as in every tool). A
process whose handles or address space the source could not read (another user's on a
Linux host, a kernel thread) is said to be so, in one line, never shown as an empty
table. Numbers are read as the console read them (``cmd_args.u`` is LK's
``atoul``: decimal, or hex after ``0x``), but where the console read anything else as 0
(``k mx ht abc`` looked for process 0), a koid that is not a number is a usage error, and
so is an argument a command does not take (``k mx ps junk``).

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


def _usage(err: TextIO, prefix: str = "") -> int:
    err.write(prefix + USAGE)
    return EXIT_USAGE


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number as :func:`atoul` reads one: decimal digits, or
    hex digits after ``0x``."""
    if text.startswith("0x"):
        digits, valid = text[2:], "0123456789abcdefABCDEF"
    else:
        digits, valid = text, "0123456789"
    return bool(digits) and all(ch in valid for ch in digits)


def _not_a_koid(text: str, err: TextIO) -> int:
    return _usage(err, f"not a process koid: {safe_text(text)}\n")


def _process(snapshot: Snapshot, koid: int, err: TextIO) -> Process | None:
    process = snapshot.processes.get(koid)
    if process is None:
        err.write(NOT_FOUND)
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


def _vmos(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    unit = ""
    if len(args) >= 2:
        option = args[1]
        if not option.startswith("-u"):
            return _usage(err, f"unknown option {safe_text(option)}\n")
        unit = option[2:3]  # one character, as the console takes it
    target = args[0]
    if target in ("all", "hidden"):
        snapshot = source.snapshot(Level.FULL)
        write_all_vmos(snapshot, out, hidden_only=target == "hidden", unit=unit)
        return 0
    if not is_number(target):
        return _not_a_koid(target, err)
    koid = atoul(target)
    snapshot = source.snapshot(Level.FULL, processes=[koid])
    process = _process(snapshot, koid, err)
    if process is None:
        return 1
    unseen = _unseen(process, handles=False, aspace=True)
    if unseen is not None:
        err.write(f"{unseen}\n")
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
            err.write("kernel address space not available from this source\n")
            print_notes("k", notes, err)
            return 1
        write_aspace(snapshot, snapshot.kernel_aspace, out)
        print_notes("k", notes, err)
        return 0
    process = _process(snapshot, atoul(target), err)
    if process is None:
        return 1
    lacking = capture_lacks(snapshot, process, mappings=True)
    if lacking is not None:
        err.write(f"k mx asd: {lacking}\n")
        return 1
    unseen = _unseen(process, handles=False, aspace=True)
    if unseen is not None:
        err.write(f"{unseen}\n")
        return 1
    if process.aspace is None:
        # An exited process has no address space left (the kernel would have crashed).
        err.write(f"process [{process.koid}] has no address space\n")
        return 1
    write_aspace(snapshot, process.aspace, out, process=process)
    return 0


def _htinfo(source: Source, out: TextIO) -> int:
    snapshot = source.snapshot(Level.FULL)
    total = sum(len(p.handles or ()) for p in snapshot.processes.values())
    out.write(f"outstanding handles: {total}\n")
    return 0


# Subcommands and how many arguments after the subcommand each needs, at least and at
# most.
_NEEDS = {
    "ps": (0, 1),  # `ps help`
    "jobs": (0, 0),
    "ht": (1, 1),
    "vmos": (1, 2),  # `vmos <pid>|all|hidden [-u?]`
    "asd": (1, 1),
    "htinfo": (0, 0),
    # The watchdogs' limits are optional; kill needs its pid.
    "mwd": (0, 1),
    "hwd": (0, 1),
    "kill": (1, 1),
}


def mx(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    """``mx <subcommand> ...`` (``args`` excludes ``mx``)."""
    if not args:
        return _usage(err, NOT_ENOUGH)
    cmd, rest = args[0], args[1:]
    if cmd not in _NEEDS:
        return _usage(err, f"unrecognized subcommand '{safe_text(cmd)}'\n")
    least, most = _NEEDS[cmd]
    if len(rest) < least:
        return _usage(err, NOT_ENOUGH)
    if len(rest) > most or (cmd == "ps" and rest and rest[0] != "help"):
        # htinfo's extra argument prints the bare usage, as it always did.
        prefix = "" if cmd == "htinfo" else f"unexpected argument '{safe_text(rest[-1])}'\n"
        return _usage(err, prefix)
    if cmd in _LIVE_ONLY:
        err.write(f"k mx {cmd}: {_LIVE_ONLY[cmd]}\n")
        return 1
    if cmd == "ps":
        # A Linux system's handles are file descriptors: ``mx ps`` counts them by kind
        # rather than by Magenta's handle types (whatever source read the snapshot).
        if rest:  # `ps help`
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
        if not is_number(rest[0]):
            return _not_a_koid(rest[0], err)
        koid = atoul(rest[0])
        snapshot = source.snapshot(Level.FULL, processes=[koid])
        process = _process(snapshot, koid, err)
        if process is None:
            return 1
        lacking = capture_lacks(snapshot, process, mappings=False)
        if lacking is not None:
            err.write(f"k mx ht: {lacking}\n")
            return 1
        unseen = _unseen(process, handles=True, aspace=False)
        if unseen is not None:
            err.write(f"{unseen}\n")
            return 1
        write_handles(process, out)
        return 0
    if cmd == "vmos":
        return _vmos(rest, source, out, err)
    if cmd == "asd":
        if rest[0] != "kernel" and not is_number(rest[0]):
            return _not_a_koid(rest[0], err)
        return _asd(rest[0], source, out, err)
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
        return _usage(err, NOT_ENOUGH)
    if args[0] != "mx":
        # The console knows many commands; `mx` is the only one mxmem has.
        return _usage(err, "command not found\n")
    return mx(args[1:], source, out, err)


TOOL = Tool("k", "the kernel console's `mx` commands: ps, jobs, ht, vmos, asd", run)
