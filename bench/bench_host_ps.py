"""``mxmem --host ps`` against ps_mem, smem and the raw read of every ``smaps_rollup``.

    sudo python3 bench/bench_host_ps.py              # 10 interleaved runs of each command
    sudo python3 bench/bench_host_ps.py --repeat 30  # more runs
    python3 bench/bench_host_ps.py --hold            # start the load, wait for Enter

Run it as root: the peers refuse (ps_mem) or silently skip (smem) other users' processes,
and the load's figures are only comparable when every tool sees every process. It needs
the peers installed to time them; a missing one is skipped with the command that
installs it::

    apt-get install -y smem        # Debian's smem 1.5 (/usr/bin/smem)
    python3 -m pip install ps_mem  # ps_mem 3.14 (PyPI)
    python3 -m pip install -e .    # the ``mxmem`` console script

**The load.** A load parent, started in a session of its own, builds what the reference
measurement used (``linux-memory.md`` §6.1), 201 processes in all:

* a 64 MiB file on disk (in ``/var/tmp``), mapped ``MAP_SHARED`` read-only and read
  through by every Python process of the load;
* a 32 MiB memfd ``bench-shm``, written by the parent and mapped ``MAP_SHARED`` by the
  parent, its forked children and its exec'd children (191 mappers);
* an 8 MiB memfd ``bench-unmapped``, only held open (by the parent and, inherited, its
  forked children and grandchildren: no smaps-based tool can see it);
* a 48 MiB private anonymous region filled before forking 40 children, each of which
  dirties one quarter of it (12 MiB of copy-on-write copies); 10 of them fork a
  grandchild that dirties another 6 MiB;
* 140 exec'd Python children (``python -S``) mapping all or half of the file and the
  whole memfd, with heaps of 0 to 2.25 MiB;
* 10 ``setarch -R sleep`` (no address space randomisation: identical ``smaps_rollup``
  texts, the case that ps_mem's hash check collapses into one process).

The file is unlinked as soon as every process has mapped it. Every Python process of the
load blocks on a pipe held by this script, and the sleeps end by themselves after
``--timeout`` seconds; the load's process group is killed with SIGKILL when the
benchmark ends, even on an error or Ctrl-C. If the benchmark is itself killed, the pipe
closes, the load parent kills its group, and nothing is left either.

**Timing.** Once the load is ready, each command runs ``--repeat`` times (after one
warm-up run each), interleaved round-robin so that a burst of other activity on the
machine hits all of them alike. Wall time is ``time.perf_counter`` around
``subprocess.run`` with output to ``/dev/null``; the table shows the median, min and max
and the ratio of the median to the raw read's median, and the median CPU time (user +
system, all threads: mxmem's threads spend about what a sequential read spends, in less
wall time):

* ``cat /proc/[0-9]*/smaps_rollup`` through ``sh -c`` (the kernel's page-table walks
  with next to nothing around them: the floor for any smaps_rollup-based tool);
* ``mxmem --host ps``: the installed console script, and ``python -m mxmem``;
* ``ps_mem`` (per-program totals from ``smaps_rollup``);
* ``smem -t`` (per-process sums over every VMA of ``smaps``).

Run it on an otherwise idle machine. mxmem's scan reads on one thread per CPU, so on a
2-CPU machine a busy process elsewhere takes half of what mxmem gains over the
sequential ``cat``, and it slows the Python tools' startup more than ``cat``'s; the CPU
column shows what each command costs regardless.

Commands are run by their real paths: a pyenv shim (a bash script) in ``$PATH`` would
add its own tens of milliseconds to every Python tool. Before timing, the bytecode of
mxmem and ps_mem is compiled (as ``pip install`` of a wheel does), since under
``PYTHONDONTWRITEBYTECODE`` an editable install would recompile mxmem on every run.

Below the table, ``where mxmem's time goes`` splits one ``mxmem --host ps`` into the
interpreter's startup (``python -c pass``; and without ``site``, to show what the
interpreter's ``.pth`` files cost), the import of the CLI and the host source, the
scan (``HostSource.snapshot(Level.TASKS)``), and accounting plus rendering.

**Agreement.** Over the load's processes, per-process PSS from ``mxmem --host ps
--json`` is compared with ps_mem's (``get_memory_usage`` of its module with ``-d``'s
arguments: the unrounded figures that ``ps_mem -d -p PIDS`` prints to 0.1 KiB/MiB),
smem's (``smem -c "pid pss"``), the sum of the per-VMA ``Pss`` lines of ``smaps``, and
the kernel's ``smaps_rollup`` read by this script: the max, median and sum of the
differences in KiB, how many are exact, and why a peer differs (ps_mem adds 0.5 KiB per
``Pss`` line; smem sums per-VMA ``Pss`` values, each truncated to a whole KiB).
ps_mem's program view is checked on the 10 sleeps (``ps_mem -t -p PIDS``), where its
hash check divides their total by 10.

A page that a load process shares with the tools themselves (Python's text, libc) is
divided by one more mapper while a tool runs, so the kernel's figures depend on who is
running: the load parent's PSS is ~100 KiB lower while any Python tool runs, because it
shares pages of the Python binary that its small children never touch. The kernel's
figures are therefore also read beside an idle twin of mxmem's process (the same binary,
having run the same ``ps``).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import mmap
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
PAGE = mmap.PAGESIZE

# The load (linux-memory.md §6.1).
FILE_BYTES = 64 * MiB
SHM_BYTES = 32 * MiB
HELD_BYTES = 8 * MiB
COW_BYTES = 48 * MiB
FORKED = 40
GRANDCHILDREN = 10
EXECED = 140
SLEEPS = 10

# --- the load ------------------------------------------------------------------------------

# An exec'd child: maps the file (all of it, or its first half) and the memfd, reads every
# page, allocates a heap, reports ready on fd ``ready`` and blocks on stdin (the pipe this
# script holds) until the benchmark ends.
EXEC_CHILD = """
import mmap, os, sys
path, shm_fd, ready_fd, half, heap_kib = sys.argv[1:]
shm_fd, ready_fd, half, heap_kib = int(shm_fd), int(ready_fd), int(half), int(heap_kib)
with open(path, "rb") as f:
    size = os.fstat(f.fileno()).st_size
    m = mmap.mmap(f.fileno(), size // 2 if half else size, mmap.MAP_SHARED, mmap.PROT_READ)
s = mmap.mmap(shm_fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
total = sum(m[i] for i in range(0, len(m), mmap.PAGESIZE))
total += sum(s[i] for i in range(0, len(s), mmap.PAGESIZE))
heap = bytearray(b"\\x01" * (heap_kib * 1024))
os.write(ready_fd, b"x")
os.close(ready_fd)
os.read(0, 1)
"""


def _dirty(region: mmap.mmap, start: int, length: int, value: int) -> None:
    for offset in range(start, start + length, PAGE):
        region[offset] = value


def _wait_for_children(ready_r: int, count: int, timeout: float) -> None:
    got, deadline = 0, time.monotonic() + timeout
    while got < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([ready_r], [], [], left)[0]:
            raise RuntimeError(f"only {got} of {count} load processes became ready")
        data = os.read(ready_r, 4096)
        if not data:
            raise RuntimeError("the load's children went away")
        got += len(data)


def load_parent(workdir: str, sleep_seconds: int) -> None:
    """The load's parent process (``--load-parent``): build everything, print the pids
    as one JSON line, then wait for stdin to close and take the whole group down."""
    path = os.path.join(workdir, "shared-64m.bin")
    with open(path, "wb") as f:
        chunk = bytes(range(256)) * (MiB // 256)
        for _ in range(FILE_BYTES // MiB):
            f.write(chunk)
    with open(path, "rb") as f:
        shared_file = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
    sum(shared_file[i] for i in range(0, FILE_BYTES, PAGE))

    shm_fd = os.memfd_create("bench-shm", 0)  # inheritable: exec'd children map it
    os.set_inheritable(shm_fd, True)
    os.ftruncate(shm_fd, SHM_BYTES)
    shm = mmap.mmap(shm_fd, SHM_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    _dirty(shm, 0, SHM_BYTES, 7)

    held_fd = os.memfd_create("bench-unmapped", 0)
    os.ftruncate(held_fd, HELD_BYTES)
    os.pwrite(held_fd, b"\x05" * HELD_BYTES, 0)

    cow = mmap.mmap(-1, COW_BYTES, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(cow, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
        cow.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB pages: a child's write copies one page
    _dirty(cow, 0, COW_BYTES, 1)

    ready_r, ready_w = os.pipe()
    forked: list[int] = []
    for i in range(FORKED):
        pid = os.fork()
        if pid == 0:  # a forked child: dirty one quarter, maybe fork a grandchild
            quarter = COW_BYTES // 4
            _dirty(cow, (i % 4) * quarter, quarter, 2)
            if i < GRANDCHILDREN and os.fork() == 0:
                _dirty(cow, ((i + 1) % 4) * quarter, quarter // 2, 3)
            os.write(ready_w, b"x")
            os.read(0, 1)  # stdin closes when the benchmark ends
            os._exit(0)
        forked.append(pid)

    execed: list[int] = []
    for i in range(EXECED):
        args = [path, str(shm_fd), str(ready_w), str(i % 2), str((i % 10) * 256)]
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", EXEC_CHILD, *args], pass_fds=(shm_fd, ready_w)
        )
        execed.append(child.pid)

    sleeps: list[int] = []
    setarch = shutil.which("setarch")
    for _ in range(SLEEPS):
        argv = ["sleep", str(sleep_seconds)]
        if setarch is not None:
            argv = [setarch, os.uname().machine, "-R", *argv]
        sleeps.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL).pid)

    _wait_for_children(ready_r, FORKED + GRANDCHILDREN + EXECED, timeout=120)
    os.unlink(path)  # mapped everywhere: nothing is left on disk, whatever happens next
    os.rmdir(workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until setarch has exec'd sleep everywhere
        comms = []
        for pid in sleeps:
            with contextlib.suppress(OSError):
                comms.append(Path(f"/proc/{pid}/comm").read_text().strip())
        if comms == ["sleep"] * SLEEPS:
            break
        time.sleep(0.02)
    grandchildren = _children_of(forked)
    report = {
        "parent": os.getpid(),
        "forked": forked,
        "grandchildren": grandchildren,
        "execed": execed,
        "sleeps": sleeps,
        "setarch": setarch is not None,
    }
    print(json.dumps(report), flush=True)
    os.read(0, 1)  # the benchmark is done (or died): stdin is closed
    os.killpg(0, signal.SIGKILL)


def _children_of(parents: Sequence[int]) -> list[int]:
    wanted = set(parents)
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) in wanted:
            found.append(int(name))
    return sorted(found)


class Load(NamedTuple):
    parent: int
    forked: list[int]
    grandchildren: list[int]
    execed: list[int]
    sleeps: list[int]
    setarch: bool

    @property
    def pids(self) -> list[int]:
        return sorted([self.parent, *self.forked, *self.grandchildren, *self.execed, *self.sleeps])


@contextlib.contextmanager
def running_load(sleep_seconds: int) -> Iterator[Load]:
    """The load, from start to a guaranteed end (its process group SIGKILLed, the
    temporary directory removed), whatever happens in between."""
    workdir = tempfile.mkdtemp(prefix="mxmem-bench-", dir="/var/tmp")
    proc = subprocess.Popen(
        [sys.executable, "-S", __file__, "--load-parent", workdir, str(sleep_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        if not select.select([proc.stdout], [], [], 180)[0]:
            raise RuntimeError("the load did not become ready in 180 s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load parent exited with {proc.wait()}")
        yield Load(**json.loads(line))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --- the commands ----------------------------------------------------------------------------


class Command(NamedTuple):
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    ok_codes: tuple[int, ...] = (0,)  # cat fails on kernel threads' files: any code will do


def _script(name: str) -> str | None:
    """The real path of an installed console script: the one beside this interpreter
    first (a pyenv shim in $PATH is a bash script that would be timed too)."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _src_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}


def _module_file(python: str, module: str) -> str | None:
    proc = subprocess.run(
        [python, "-c", f"import importlib.util as u; print(u.find_spec({module!r}).origin)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def _ps_mem_python() -> str:
    """The interpreter ps_mem is installed for: this one, or its script's ``#!`` line."""
    if _module_file(sys.executable, "ps_mem"):
        return sys.executable
    script = _script("ps_mem")
    if script is not None:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.startswith("#!") and "python" in first:
            return first[2:].split()[0]
    return sys.executable


def commands(notes: list[str]) -> list[Command]:
    """What is timed, in table order; a missing tool is left out with a note saying how
    to install it."""
    found = [
        Command(
            "cat /proc/[0-9]*/smaps_rollup",
            ["/bin/sh", "-c", "exec cat /proc/[0-9]*/smaps_rollup"],
            ok_codes=(0, 1),
        )
    ]
    mxmem = _script("mxmem")
    if mxmem is None:
        notes.append("mxmem: no console script; install it with `python3 -m pip install -e .`")
    else:
        found.append(Command("mxmem --host ps", [mxmem, "--host", "ps"]))
    found.append(
        Command(
            "python -m mxmem --host ps", [sys.executable, "-m", "mxmem", "--host", "ps"], _src_env()
        )
    )
    ps_mem = _script("ps_mem")
    if ps_mem is None:
        notes.append("ps_mem: not installed; `python3 -m pip install ps_mem` (skipped)")
    elif os.geteuid() != 0:
        notes.append("ps_mem: refuses to run without root (skipped)")
    else:
        found.append(Command("ps_mem", [ps_mem]))
    smem = shutil.which("smem")
    if smem is None:
        notes.append("smem: not installed; `apt-get install -y smem` (skipped)")
    else:
        found.append(Command("smem -t", [smem, "-t"]))
    return found


def compile_bytecode(notes: list[str]) -> None:
    """Compile mxmem's and ps_mem's modules, as installing a wheel does: with
    PYTHONDONTWRITEBYTECODE set, nothing else would, and every run would compile."""
    compileall.compile_dir(str(REPO / "src" / "mxmem"), quiet=1)
    origin = _module_file(_ps_mem_python(), "ps_mem")
    if origin and origin.endswith(".py"):
        subprocess.run(
            [_ps_mem_python(), "-m", "py_compile", origin], check=False, capture_output=True
        )
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        notes.append("PYTHONDONTWRITEBYTECODE is set: mxmem and ps_mem were compiled beforehand")


class Timing(NamedTuple):
    median: float
    low: float
    high: float
    cpu: float  # median user + system time: what the run cost the machine


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: Command) -> float:
    return _run_cpu(command)[0]


def _run_cpu(command: Command) -> tuple[float, float]:
    """Wall and CPU time (user + system, all threads) of one run."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(
        command.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=command.env,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode not in command.ok_codes:
        raise RuntimeError(f"{command.label} exited with {proc.returncode}")
    return wall, _children_cpu() - cpu


def time_commands(cmds: Sequence[Command], repeat: int) -> dict[str, Timing]:
    """One warm-up run of each, then ``repeat`` rounds; each round runs every command
    once, starting one further along the list each time."""
    walls: dict[str, list[float]] = {c.label: [] for c in cmds}
    cpus: dict[str, list[float]] = {c.label: [] for c in cmds}
    for command in cmds:
        _run(command)
    for round_ in range(repeat):
        for k in range(len(cmds)):
            command = cmds[(round_ + k) % len(cmds)]
            wall, cpu = _run_cpu(command)
            walls[command.label].append(wall)
            cpus[command.label].append(cpu)
    return {
        label: Timing(statistics.median(w), min(w), max(w), statistics.median(cpus[label]))
        for label, w in walls.items()
    }


def print_timings(timings: dict[str, Timing], repeat: int, load: Load) -> None:
    raw = timings["cat /proc/[0-9]*/smaps_rollup"]
    procs = sum(1 for name in os.listdir("/proc") if name.isdigit())
    print(
        f"\nWall time, {repeat} interleaved runs after a warm-up; {len(load.pids)} load"
        f" processes, {procs} PIDs in /proc. x raw: median / raw median (min / raw min)"
    )
    width = max(len(label) for label in timings)
    print(f"{'command':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}  {'x raw':>12}  {'CPU':>8}")
    for label, t in timings.items():
        print(
            f"{label:<{width}}  {t.median * 1e3:6.0f}ms  {t.low * 1e3:6.0f}ms"
            f"  {t.high * 1e3:6.0f}ms  {t.median / raw.median:5.2f} ({t.low / raw.low:4.2f})"
            f"  {t.cpu * 1e3:6.0f}ms"
        )
    peers = {label: t for label, t in timings.items() if label in ("ps_mem", "smem -t")}
    for label in ("mxmem --host ps", "python -m mxmem --host ps"):
        if label not in timings:
            continue
        t = timings[label]
        ratio = t.median / raw.median
        verdict = [
            f"{ratio:.2f}x the raw read's median ({'met' if ratio <= 1.5 else 'NOT met'}:"
            " at most 1.5x)"
        ]
        if peers:
            below = all(t.median < peer.median for peer in peers.values())
            verdict.append(f"median {'below' if below else 'NOT below'} every peer's")
        print(f"target, {label}: " + "; ".join(verdict))


# --- where mxmem's time goes -------------------------------------------------------------------

PHASES = """
import io, json, sys, time
t0 = time.perf_counter()
import mxmem.cli, mxmem.cli.ps, mxmem.sources.linux
t1 = time.perf_counter()
import mxmem.sources.linux.host as host
from mxmem.accounting.figures import figures
from mxmem.model import Level
from mxmem.render.ps import ps_columns, ps_rows, write_ps
source = mxmem.sources.linux.HostSource()
t2 = time.perf_counter()
snapshot = source.snapshot(Level.TASKS)
t3 = time.perf_counter()
memory = figures(snapshot, "2017")
write_ps(ps_rows(snapshot, memory, snapshot.root_job_koid), ps_columns(memory), io.StringIO())
t4 = time.perf_counter()
host.useful_workers = lambda: 1
t5 = time.perf_counter()
source.snapshot(Level.TASKS)
t6 = time.perf_counter()
from mxmem.sources.linux.parallel import useful_workers
print(json.dumps({"import": t1 - t0, "scan": t3 - t2, "render": t4 - t3, "scan1": t6 - t5,
                  "workers": useful_workers()}))
"""


def time_phases(repeat: int) -> None:
    """Split one ``mxmem --host ps`` into startup, import, scan and render."""
    startup = statistics.median(
        _run(Command("", [sys.executable, "-c", "pass"])) for _ in range(repeat)
    )
    bare = statistics.median(
        _run(Command("", [sys.executable, "-S", "-c", "pass"])) for _ in range(repeat)
    )
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", PHASES],
            capture_output=True,
            text=True,
            env=_src_env(),
            check=True,
        ).stdout
        runs.append(json.loads(out))
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"\nWhere mxmem's time goes (medians of {repeat}):")
    print(f"  interpreter startup, python -c pass       {startup * 1e3:6.0f} ms")
    print(
        f"    of which site (.pth files and all)      {(startup - bare) * 1e3:6.0f} ms"
        f"  (python -S -c pass: {bare * 1e3:.0f} ms)"
    )
    print(f"  import mxmem.cli, cli.ps, sources.linux   {med['import'] * 1e3:6.0f} ms")
    print(
        f"  scan, HostSource.snapshot(TASKS)          {med['scan'] * 1e3:6.0f} ms"
        f"  ({int(med['workers'])} threads; 1 thread: {med['scan1'] * 1e3:.0f} ms)"
    )
    print(f"  accounting + rendering                    {med['render'] * 1e3:6.0f} ms")


# --- agreement -------------------------------------------------------------------------------

# ps_mem's own per-process figures, unrounded: what `ps_mem -d -p PIDS` computes before it
# prints them to 0.1 KiB/MiB (Private + Shared, Shared = Σ(Pss + 0.5) - Private).
PS_MEM_PER_PID = """
import json, re, sys
import ps_mem
pids = [int(a) for a in sys.argv[1:]]
rows = ps_mem.get_memory_usage(pids, False, True)[0]
print(json.dumps({re.search(r"\\[(\\d+)\\]$", cmd).group(1): kib for cmd, kib in rows}))
"""


def kernel_pss(pids: Sequence[int]) -> dict[int, float]:
    """Pss + Private_Hugetlb of each process's smaps_rollup (KiB): mxmem's PSS."""
    out: dict[int, float] = {}
    for pid in pids:
        fields: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().split("\n")[1:]:
                if line.endswith(" kB"):
                    key, value = line.split(":")
                    fields[key] = int(value.split()[0])
        if fields:
            out[pid] = float(fields.get("Pss", 0) + fields.get("Private_Hugetlb", 0))
    return out


def smaps_pss(pids: Sequence[int]) -> dict[int, float]:
    """Σ of the per-VMA Pss of each process's smaps (KiB): what smem adds up."""
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/smaps").read_text()
            out[pid] = float(
                sum(int(line.split()[1]) for line in text.split("\n") if line.startswith("Pss:"))
            )
    return out


# A twin of mxmem's process: the same binary, the same code run (one ps), then idle.
TWIN = """
import io, sys
from mxmem.cli import main
out, sys.stdout = sys.stdout, io.StringIO()
main(["--host", "ps"])
out.write("ready\\n")
out.flush()
sys.stdin.read()
"""


def kernel_pss_beside_a_twin(pids: Sequence[int]) -> dict[int, float]:
    """:func:`kernel_pss` while a twin of mxmem's process runs: the pages of the Python
    binary it shares are then divided as they were while mxmem ran."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TWIN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_src_env(),
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return kernel_pss(pids)
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def mxmem_pss(cmds: Sequence[Command]) -> dict[int, float]:
    argv = [*next(c.argv for c in cmds if "mxmem" in c.label), "--json"]
    env = next(c.env for c in cmds if "mxmem" in c.label)
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    return {
        row["koid"]: row["pss_bytes"] / 1024
        for row in json.loads(out)
        if row["type"] == "p" and row["pss_bytes"] is not None
    }


def ps_mem_pss(pids: Sequence[int]) -> dict[int, float] | str:
    proc = subprocess.run(
        [_ps_mem_python(), "-c", PS_MEM_PER_PID, *map(str, pids)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"ps_mem's module failed: {proc.stderr.strip().splitlines()[-1:]}"
    return {int(pid): kib for pid, kib in json.loads(proc.stdout).items()}


def smem_pss() -> dict[int, float]:
    out = subprocess.run(
        ["smem", "-H", "-c", "pid pss"], capture_output=True, text=True, check=True
    ).stdout
    return {int(pid): float(pss) for pid, pss in (line.split() for line in out.splitlines())}


def ps_mem_program_total(pids: Sequence[int]) -> float | None:
    """``ps_mem -t -p PIDS``: the total (KiB) of ps_mem's per-program view."""
    script = _script("ps_mem")
    if script is None:
        return None
    out = subprocess.run(
        [script, "-t", "-p", ",".join(map(str, pids))], capture_output=True, text=True, check=False
    ).stdout.split()
    return int(out[0]) / 1024 if out and out[0].isdigit() else None


def _differences(
    label: str, theirs: dict[int, float], ours: dict[int, float], load: Load, expected: float = 0
) -> str:
    """One row: how ``theirs`` differs from mxmem's figures (KiB)."""
    common = sorted(theirs.keys() & ours.keys())
    if not common:
        return f"  {label:<24} no process in common"
    diffs = {pid: theirs[pid] - ours[pid] for pid in common}
    absolute = [abs(d) for d in diffs.values()]
    others = [abs(d) for pid, d in diffs.items() if pid != load.parent] or [0.0]
    exact = sum(1 for d in diffs.values() if abs(d - expected) <= 0.5)
    return (
        f"  {label:<24} {len(common):3d}  {max(absolute):7.1f}  {max(others):7.1f}"
        f"  {statistics.median(absolute):7.1f}  {statistics.median(diffs.values()):+6.1f}"
        f"  {sum(diffs.values()):+8.1f}  {exact:3d} at {expected:+.1f}"
    )


def agreement(cmds: Sequence[Command], load: Load) -> None:
    pids = load.pids
    before = kernel_pss(pids)
    ours = {pid: kib for pid, kib in mxmem_pss(cmds).items() if pid in before}
    peers: dict[str, dict[int, float] | str] = {}
    if any(c.label == "ps_mem" for c in cmds):
        peers["ps_mem -d (unrounded)"] = ps_mem_pss(pids)
    if any(c.label == "smem -t" for c in cmds):
        peers["smem -c 'pid pss'"] = smem_pss()
    after = kernel_pss(pids)
    summed = smaps_pss(pids)
    beside = kernel_pss_beside_a_twin([load.parent])
    print(
        f"\nPer-process PSS of the {len(ours)} load processes (KiB), Δ = theirs - mxmem's"
        " (mxmem --host ps --json):"
    )
    print(
        f"  {'':<24} {'n':>3}  {'max |Δ|':>7}  {'but parent':>7}  {'med |Δ|':>7}  {'med Δ':>6}"
        f"  {'Σ Δ':>8}  exactly"
    )
    print(_differences("smaps_rollup, before", before, ours, load))
    print(_differences("smaps_rollup, after", after, ours, load))
    for label, theirs in peers.items():
        if isinstance(theirs, str):
            print(f"  {label:<24} {theirs}")
        else:
            shown = {p: v for p, v in theirs.items() if p in ours}
            print(_differences(label, shown, ours, load, 0.5 if "ps_mem" in label else 0))
    print(_differences("Σ Pss lines of smaps", summed, ours, load))
    drift = max((abs(after[p] - before[p]) for p in before.keys() & after.keys()), default=0)
    parent = load.parent
    print("Why:")
    print(
        f"  The kernel's figures, read by this script before and after the peers, moved by"
        f" up to {drift:.0f} KiB. A page shared with a running tool is divided by one more"
        f" mapper: the load parent (pid {parent}) shares pages of the Python binary with"
        f" this script only; its Pss is {before.get(parent, 0):.0f} KiB read alone,"
        f" {beside.get(parent, 0):.0f} KiB beside a twin of mxmem's process (the same"
        f" binary, after the same ps), and mxmem saw {ours.get(parent, 0):.0f} KiB. Every"
        " tool measures a system that includes itself."
    )
    print(
        "  ps_mem adds 0.5 KiB per Pss line to make up for the kernel's truncation; with"
        " smaps_rollup that is one line, so +0.5 KiB on every process (the rest: the"
        " figures moved between its run and mxmem's)."
    )
    if "smem -c 'pid pss'" in peers and isinstance(smem := peers["smem -c 'pid pss'"], dict):
        same = sum(1 for pid, kib in summed.items() if smem.get(pid) == kib)
        print(
            "  smem adds up the Pss lines of every VMA of smaps, each one truncated to whole"
            " KiB by the kernel: it reads low by up to 1 KiB per VMA (its figure equals the"
            f" sum of smaps' Pss lines, read by this script, for {same} of {len(summed)}"
            " processes)."
        )
    if load.setarch and any(c.label == "ps_mem" for c in cmds):
        total = ps_mem_program_total(load.sleeps)
        ours_sleeps = sum(ours.get(pid, 0) for pid in load.sleeps)
        if total is not None:
            print(
                f"  ps_mem's program view of the {len(load.sleeps)} `setarch -R sleep`"
                f" (ps_mem -t -p): {total:.1f} KiB; mxmem: Σ {ours_sleeps:.1f} KiB"
                f" ({ours_sleeps / max(total, 1e-9):.1f}x): their smaps_rollup texts are"
                " identical, so ps_mem's hash check takes them for one address space"
                " (mxmem asks kcmp)."
            )


# --- main --------------------------------------------------------------------------------------


def _loadavg() -> str:
    """The 1-minute load average: other work on the machine skews every timing."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--load-parent"]:
        load_parent(args[1], int(args[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs of each command")
    parser.add_argument(
        "--hold", action="store_true", help="start the load and wait for Enter (no timing)"
    )
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds after which the sleeps end anyway"
    )
    opts = parser.parse_args(args)
    if os.geteuid() != 0:
        print("warning: not root: the peers skip (or refuse) other users' processes")
    notes: list[str] = []
    cmds = commands(notes)
    compile_bytecode(notes)
    for note in notes:
        print(f"note: {note}")
    print(f"starting the load ({FORKED + GRANDCHILDREN + EXECED + SLEEPS + 1} processes)...")
    with running_load(opts.timeout) as load:
        print(f"load ready: parent {load.parent}, {len(load.pids)} processes")
        if not load.setarch:
            print("note: no setarch: the sleeps run with ASLR (ps_mem's collision not shown)")
        if opts.hold:
            print("Enter stops the load")
            sys.stdin.readline()
            return 0
        time.sleep(1)  # let the last children's exits and page faults settle
        before = _loadavg()
        timings = time_commands(cmds, opts.repeat)
        print_timings(timings, opts.repeat, load)
        print(f"load average (1 min) before and after: {before} / {_loadavg()}")
        time_phases(opts.repeat)
        agreement(cmds, load)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the load is gone already: running_load's finally
        print("interrupted: the load was stopped", file=sys.stderr)
        raise SystemExit(130) from None
