"""The ``mxmem`` command: ``mxmem [SOURCE OPTIONS] TOOL [TOOL ARGS]``.

Exit codes are decided here and only here: a tool returns its own code (0; 1 when the
object it was asked about cannot be found or read; :data:`~mxmem.cli.options.EXIT_USAGE`,
2, for any usage error, the same in every tool); an :class:`~mxmem.errors.MxmemError`
prints ``mxmem: <message>`` and exits with the error's ``exit_code``; a closed output
pipe (``mxmem ps | head -1``) exits quietly with 141 and Ctrl-C with 130 (128 + the
signal number, as a shell reports a process killed by SIGPIPE or SIGINT). No path prints
a traceback.
"""

from __future__ import annotations

import gc
import io
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import TextIO

from mxmem.cli.common import LazySource, RunFn, Tool
from mxmem.cli.options import EXIT_USAGE, source_option
from mxmem.errors import MxmemError, UsageError
from mxmem.render.text import safe_text
from mxmem.sources import Source

__all__ = ["EXIT_USAGE", "TOOLS", "TOOL_MODULES", "main"]

# The tools as data: name -> (module, summary). A command imports only the module of the
# tool it runs: importing all eight (the sim worlds, the treemap, memgraph...) cost ~25 ms
# of CPU on every `mxmem --host ps`. tests/unit/cli/test_cli.py checks each entry against its
# module's own TOOL.
TOOL_MODULES: dict[str, tuple[str, str]] = {
    "ps": ("mxmem.cli.ps", "jobs, processes and threads with their PSS/PRIVATE/SHARED memory"),
    "vmaps": ("mxmem.cli.vmaps", "a process's address space: VMARs and mappings"),
    "vmos": ("mxmem.cli.vmos", "a process's VMOs, held by handle or mapped"),
    "memgraph": ("mxmem.cli.memgraph", "the whole system (kernel, tasks, VMOs) as JSON records"),
    "treemap": ("mxmem.cli.treemap", "the whole system as a zoomable HTML treemap page"),
    "kstats": ("mxmem.cli.kstats", "kernel memory and per-CPU statistics, every few seconds"),
    "k": ("mxmem.cli.kconsole", "the kernel console's `mx` commands: ps, jobs, ht, vmos, asd"),
    "capture": (
        "mxmem.cli.capture",
        "save a snapshot of the system to a file (read back with --capture)",
    ),
    "digest": ("mxmem.cli.digest", "memory grouped into named buckets, as Fuchsia's digest"),
    "diff": ("mxmem.cli.diff", "what changed between two captures or sources, sorted by growth"),
    "scenarios": ("mxmem.cli.scenarios", "list the simulated worlds --sim=WORLD accepts"),
}


def _deferred(module: str) -> RunFn:
    """A ``run`` that imports ``module`` on its first call and runs its ``TOOL``."""

    def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
        tool: Tool = import_module(module).TOOL
        return tool.run(args, source, out, err)

    return run


TOOLS: dict[str, Tool] = {
    name: Tool(name, summary, _deferred(module)) for name, (module, summary) in TOOL_MODULES.items()
}

# With no source option the tools inspect the machine they run on; `--sim` alone is the
# simulated kernel's documentation world.
DEFAULT_SOURCE = "host"
SIM_DEFAULT = "sim:doc"

EXIT_SIGPIPE = 128 + 13
EXIT_SIGINT = 128 + 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in mxmem


def _help() -> str:
    width = max(len(name) for name in TOOLS)
    tools = "".join(f"  {name:<{width}}  {t.summary}\n" for name, t in TOOLS.items())
    return f"""\
Usage: mxmem [SOURCE] TOOL [ARGS...]

Magenta's 2017 memory tools, over the live Linux host, a simulated Magenta kernel
or a capture file.

Source (before the tool; the default is --host):
  --host         this Linux system, read from /proc (run as root to see every
                 process)
  --sim          the simulated kernel's default world ({SIM_DEFAULT.partition(":")[2]})
  --sim=WORLD    a simulated world: a built-in name (see `mxmem scenarios`),
                 scale:N[:SEED], or a world file FILE.toml / FILE.json
  --capture=FILE a capture file: an mxmem snapshot (`mxmem capture`), memgraph
                 JSON or a Fuchsia memory_monitor capture, gzipped or not;
                 --capture=- reads it from standard input

Tools:
{tools}
Every tool prints its own help with -h or --help (`mxmem ps -h`; vmaps and vmos
also take `help`). Tool options: short flags bundle (-TJ), values attached or
apart (--job=1103, --job 1103). Usage errors exit 2 in every tool; an object
that cannot be found or read, 1.
ps, vmaps, vmos, treemap, diff and scenarios take --json; digest takes --output json.

Options:
  -h, --help     show this help and exit
  --version      show mxmem's version and exit
"""


def _dispatch(args: Sequence[str], source: Source | None, out: TextIO, err: TextIO) -> int:
    spec = DEFAULT_SOURCE
    chosen = False
    given = ""  # the source option given, for the error when another follows
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg in ("-h", "--help"):
            out.write(_help())
            return 0
        if arg == "--version":
            from mxmem import __version__

            out.write(f"mxmem {__version__}\n")
            return 0
        if chosen and source_option(arg):
            raise UsageError(
                f"two source options ({safe_text(given)} and {safe_text(arg)}): give one",
                EXIT_USAGE,
            )
        given = arg
        if arg == "--sim":
            spec = SIM_DEFAULT
        elif arg.startswith("--sim="):
            world = arg[len("--sim=") :]
            if not world:
                raise UsageError("--sim= needs a world; `mxmem scenarios` lists them", EXIT_USAGE)
            spec = f"sim:{world}"
        elif arg == "--host":
            spec = "host"
        elif arg == "--capture" or arg.startswith("--capture="):
            path = arg[len("--capture=") :] if "=" in arg else None
            if path is None:
                i += 1
                if i == len(args):
                    raise UsageError("--capture needs a file", EXIT_USAGE)
                path = args[i]
            if not path:
                raise UsageError("--capture= needs a file", EXIT_USAGE)
            spec = f"capture:{path}"
        else:
            raise UsageError(f"unknown option {arg!r}; see `mxmem --help`", EXIT_USAGE)
        chosen = True
        i += 1
    if i == len(args):
        err.write(_help())
        return EXIT_USAGE
    name = args[i]
    tool = TOOLS.get(name)
    if tool is None:
        raise UsageError(
            f"unknown tool {name!r}; `mxmem --help` lists the tools{_world_hint(name)}",
            EXIT_USAGE,
        )
    try:
        return tool.run(args[i + 1 :], source or LazySource(spec, chosen=chosen), out, err)
    except MxmemError as e:
        # A tool's own error already names the tool ("treemap: cannot write ..."): one
        # prefix form, as the tools that print their errors themselves use.
        message = safe_text(str(e))
        if not message.startswith(f"{name}: "):
            raise
        err.write(f"{message}\n")
        return e.exit_code


def _world_hint(name: str) -> str:
    """For an unknown tool that is a simulated world (`mxmem --sim doc ps`): how to name
    a world."""
    from mxmem.sources.sim.worlds import worlds

    if any(w.name == name for w in worlds()):
        return " (worlds are given as --sim=WORLD)"
    return ""


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of what is still
    buffered cannot fail again on the closed pipe (the recipe of Python's signal docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no real fd behind stdout (e.g. captured in tests)
        pass


def main(argv: Sequence[str] | None = None, *, source: Source | None = None) -> int:
    """Run ``mxmem`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    ``source`` replaces the source the command line names: tests and embedders pass a
    source over a kernel they built.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _reconfigure_streams()
    out, err = sys.stdout, sys.stderr
    # A tool run is short and builds large acyclic graphs (a million mappings for a big
    # snapshot), which the cyclic GC rescans over and over: off, ps over 1M mappings
    # takes ~35% less time (measured on scale:20000: 4.1 s -> 2.6 s).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        code = _dispatch(args, source, out, err)
        # Flush here, not at interpreter exit, so a closed pipe is handled below.
        out.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except UsageError as e:
        err.write(f"mxmem: {e}\n")
        return e.exit_code
    except MxmemError as e:
        err.write(f"mxmem: {safe_text(str(e))}\n")
        return e.exit_code
    except OSError as e:
        err.write(f"mxmem: {safe_text(str(e))}\n")
        return 1
    except Exception as e:
        if os.environ.get("MXMEM_DEBUG"):
            raise
        err.write(
            f"mxmem: internal error: {type(e).__name__}: {safe_text(str(e))}"
            " (set MXMEM_DEBUG=1 for a traceback)\n"
        )
        return EXIT_INTERNAL
    finally:
        if gc_was_enabled:
            gc.enable()


def _reconfigure_streams() -> None:
    # Names are escaped for terminals, but a locale whose encoding cannot represent a
    # name's characters must still not crash the tool.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
