"""``mxmem k mx ...``: the kernel console's diagnostic commands (spec §10).

Hand-built kernels pin every number by hand; the ``doc`` world's whole outputs are
goldens (tests/goldens/data/k-mx-*_doc.txt, regenerated with ``--update-golden``).
tests/goldens/data/k-mx-asd-kernel.seed.txt is the seed document's ``k mx asd kernel`` example,
copied verbatim (never regenerated): the doc world's dump must have exactly its line
shapes.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from paths import GOLDEN_DIR
from users import as_nobody

from mxmem.cli import main
from mxmem.cli.kconsole import atoul
from mxmem.model import Level, ObjType, Perm, Rights
from mxmem.render.kconsole import kernel_pointer
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource
from mxmem.sources.sim.kernel import KERNEL, SimProcess, SimVmar
from mxmem.sources.sim.source import kernel_snapshot
from mxmem.sources.sim.worlds import build

P = PAGE_SIZE

# Written out from the brief's copy of diagnostics.cpp's usage, not from the renderer.
USAGE = """\
mx ps                : list processes
mx jobs              : list jobs
mx mwd  <mb>         : memory watchdog
mx ht   <pid>        : dump process handles
mx hwd  <count>      : handle watchdog
mx vmos <pid>|all|hidden [-u?]
                     : dump process/all/hidden VMOs
                 -u? : fix all sizes to the named unit
                       where ? is one of [BkMGTPE]
mx kill <pid>        : kill process
mx asd  <pid>|kernel : dump process/kernel address space
mx htinfo            : handle table info
"""

PS_KEY = """\
id  : process id number
#h  : total number of handles
#jb : number of job handles
#pr : number of process handles
#th : number of thread handles
#vo : number of vmo handles
#vm : number of virtual memory address region handles
#ch : number of channel handles
#ev : number of event and event pair handles
#po : number of port handles
#so: number of sockets
#tm : number of timers
#fi : number of fifos
"""

PS_HEADER = "     id  #h:  #jb #pr #th #vo #vm #ch #ev #po #so #tm #fi [name]"
VMO_HEADER = "           -      -  koid parent #chld #map #shr    size   alloc name"
VMO_HANDLE_HEADER = "      handle rights  koid parent #chld #map #shr    size   alloc name"

# Handle values of a process's first handles: the sim's bijection on the serial number,
# (((n * 0x9E3779B1) & 0x7FFFFFFF) << 1) | 1, worked out for n = 1..4.
H1, H2, H3, H4 = 0x3C6EF363, 0x78DDE6C5, 0xB54CDA27, 0xF1BBCD89


def root_vmar(p: SimProcess) -> SimVmar:
    assert p.aspace is not None and p.aspace.root is not None
    return p.aspace.root


def k(
    capsys: pytest.CaptureFixture[str], *args: str, kernel: Kernel | None = None
) -> tuple[int, str, str]:
    # Without a kernel of its own, the simulated doc world (the CLI's default is the host).
    source = SimSource(kernel) if kernel is not None else None
    code = main(["--sim", "k", *args], source=source)
    out, err = capsys.readouterr()
    return code, out, err


def doc(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``mxmem --sim=doc k ARGS``: the doc world's output."""
    code = main(["--sim=doc", "k", *args])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    return out


def ok(capsys: pytest.CaptureFixture[str], *args: str, kernel: Kernel | None = None) -> str:
    code, out, err = k(capsys, *args, kernel=kernel)
    assert (code, err) == (0, "")
    return out


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        ([], "not enough arguments:\n"),
        (["mx"], "not enough arguments:\n"),
        (["mx", "ht"], "not enough arguments:\n"),
        (["mx", "vmos"], "not enough arguments:\n"),
        (["mx", "asd"], "not enough arguments:\n"),
        (["mx", "kill"], "not enough arguments:\n"),
        (["mx", "frob"], "unrecognized subcommand 'frob'\n"),
        (["mx", "PS"], "unrecognized subcommand 'PS'\n"),
        (["mx", "vmos", "all", "-x"], "unknown option -x\n"),
        (["mx", "htinfo", "extra"], ""),
        (["zx", "ps"], "command not found\n"),
    ],
)
def test_usage(capsys: pytest.CaptureFixture[str], args: list[str], prefix: str) -> None:
    # The usage of a wrong command line is an error: on stderr, as in every tool.
    assert k(capsys, *args, kernel=Kernel(16 << 20, wired_bytes=1 << 20)) == (
        2,
        "",
        prefix + USAGE,
    )


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_the_usage(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert k(capsys, flag) == (0, USAGE, "")


def test_hostile_subcommand_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = k(capsys, "mx", "\x1b[2J")
    assert code == 2
    assert err.startswith("unrecognized subcommand '\\x1b[2J'\n")


@pytest.mark.parametrize(
    ("cmd", "why"),
    [
        ("mwd", "the memory watchdog polls a live kernel every second; a snapshot does not change"),
        ("hwd", "the handle watchdog polls a live kernel every second; a snapshot does not change"),
        ("kill", "killing a process needs a live kernel; a snapshot cannot be changed"),
    ],
)
def test_live_kernel_commands_are_refused(
    capsys: pytest.CaptureFixture[str], cmd: str, why: str
) -> None:
    assert k(capsys, "mx", cmd, "1043") == (1, "", f"k mx {cmd}: {why}\n")


def test_ps_help_prints_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "ps", "help") == PS_KEY


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1043", 1043),
        ("0x413", 1043),
        ("0x", 0),
        ("12ab", 12),  # atoul stops at the first non-digit
        ("abc", 0),
        ("", 0),
        ("0X413", 0),  # only a lower-case 0x means hex
        ("-5", 0),
        ("18446744073709551617", 1),  # unsigned long wraps
    ],
)
def test_atoul(text: str, value: int) -> None:
    assert atoul(text) == value


# --------------------------------------------------------------------------- ps, jobs, ht


def handles_world() -> Kernel:
    """root: ``a`` (2000, a handle of every kind), then job ``sub`` (2100) with ``b``
    (2101), then ``c`` (2200) in root again — created after ``sub``, listed before it.

    a's handles, in table order: a channel pair (2 channel), an event, two event pairs,
    a port, a socket, a timer, a fifo, an interrupt (total only), two VMOs, the root job,
    itself, its thread, its root VMAR: 16 in all.
    """
    k = Kernel(16 << 20, wired_bytes=1 << 20, first_koid=1990)
    a = k.process_create(k.root_job, "a", koid=2000)
    thread = k.thread_create(a, "t")
    k.process_start(a, thread)
    k.channel_create(a)
    for t in (ObjType.EVENT, ObjType.EVENTPAIR, ObjType.EVENTPAIR, ObjType.PORT):
        k.object_create(a, t)
    for t in (ObjType.SOCKET, ObjType.TIMER, ObjType.FIFO, ObjType.INTERRUPT):
        k.object_create(a, t)
    k.vmo_create(P, "v1", owner=a)
    k.vmo_create(P, "v2", owner=a)
    k.handle_grant(a, k.root_job, Rights.READ)
    k.handle_grant(a, a, Rights.READ)
    k.handle_grant(a, thread, Rights.READ)
    k.handle_grant(a, root_vmar(a), Rights.READ)
    sub = k.job_create(k.root_job, "sub", koid=2100)
    b = k.process_create(sub, "b", koid=2101)
    k.process_start(b)
    k.vmo_create(P, "", owner=b)
    c = k.process_create(k.root_job, "c", koid=2200)
    k.process_start(c)
    return k


def test_ps_counts_handles_by_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "ps", kernel=handles_world()).splitlines() == [
        PS_HEADER,
        #            #h   jb  pr  th  vo  vm  ch  ev  po  so  tm  fi
        "   2000  16:   1   1   1   2   1   2   3   1   1   1   1 [a]",
        "   2200   0:   0   0   0   0   0   0   0   0   0   0   0 [c]",
        "   2101   1:   0   0   0   1   0   0   0   0   0   0   0 [b]",
    ]


def test_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "jobs", kernel=handles_world()) == (
        "All jobs:\n   koid name\n   1990 'root'\n   2100 'sub'\n"
    )


def test_ht(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel(16 << 20, wired_bytes=1 << 20)
    p = kernel.process_create(kernel.root_job, "p", koid=3000)
    kernel.process_start(p)
    kernel.channel_create(p)  # 3002, 3003 (3001 is the root VMAR)
    kernel.vmo_create(P, "v", owner=p, koid=3004)
    kernel.object_create(p, ObjType.EVENTPAIR, koid=3005)
    expected = [
        "process [3000] handles :",
        "handle       koid : type",
        " 3c6ef363     3002 : CHANNEL",
        " 78dde6c5     3003 : CHANNEL",
        " b54cda27     3004 : VMO",
        " f1bbcd89     3005 : EVENT_PAIR",
        "total: 4 handles",
    ]
    assert ok(capsys, "mx", "ht", "3000", kernel=kernel).splitlines() == expected
    # The console reads numbers with atoul: hex after 0x.
    assert ok(capsys, "mx", "ht", "0xbb8", kernel=kernel).splitlines() == expected


@pytest.mark.parametrize(
    "args", [["ht", "999"], ["vmos", "999"], ["asd", "999"], ["ht", "0x3e7"], ["asd", "0"]]
)
def test_process_not_found(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    kernel = Kernel(16 << 20, wired_bytes=1 << 20)
    assert k(capsys, "mx", *args, kernel=kernel) == (1, "", "process not found!\n")


def test_htinfo_counts_every_handle(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "htinfo", kernel=handles_world()) == "outstanding handles: 17\n"


# --------------------------------------------------------------------------- vmos


def vmos_world() -> Kernel:
    """Process ``app`` (2000) and, in creation order:

    * ``held`` 2010, 12k with 4k written: held by a handle only — hidden;
    * ``mapped`` 2011, 8k all written, mapped rw- at 0x10000000 — not hidden;
    * ``kmapped`` 2012: a user koid (held by the kernel) mapped only into the kernel
      address space — hidden;
    * ``konly``: kernel-only (koid 0), 4k written, unmapped — hidden;
    * ``kstack``: kernel-only, mapped by app at 0x20000000 — not hidden;
    * ``regs`` 2013: a physical device range, mapped r-- at 0x30000000 — not hidden;
    * ``clone`` 2014: a clone of the first page of ``mapped``, one page written, mapped
      at 0x40000000 — not hidden.

    app's handles: held, mapped, regs, clone (values H1..H4).
    """
    kernel = Kernel(16 << 20, wired_bytes=1 << 20)
    app = kernel.process_create(kernel.root_job, "app", koid=2000)
    kernel.process_start(app)
    root = root_vmar(app)
    held = kernel.vmo_create(3 * P, "held", owner=app, koid=2010)
    kernel.vmo_write(held, 0, P)
    mapped = kernel.vmo_create(2 * P, "mapped", owner=app, koid=2011)
    kernel.vmo_write(mapped, 0, 2 * P)
    kernel.vmar_map(root, mapped, addr=0x10000000)
    kmapped = kernel.vmo_create(P, "kmapped", owner=KERNEL, koid=2012)
    kroot = kernel.kernel_aspace.root
    assert kroot is not None
    kernel.vmar_map(kroot, kmapped, addr=0xFFFFFFA000000000)
    konly = kernel.vmo_create(P, "konly", owner=None)
    kernel.vmo_write(konly, 0, P)
    kstack = kernel.vmo_create(P, "kstack", owner=None)
    kernel.vmar_map(root, kstack, addr=0x20000000)
    regs = kernel.vmo_create_physical(0xFE000000, 2 * P, "regs", owner=app, koid=2013)
    kernel.vmar_map(root, regs, perms=Perm.READ, addr=0x30000000)
    clone = kernel.vmo_clone(mapped, 0, P, "clone", owner=app, koid=2014)
    kernel.vmo_write(clone, 0, 1)
    kernel.vmar_map(root, clone, addr=0x40000000)
    return kernel


# The boot VMOs of a 16M kernel with 1M wired: the physmap and the HPET are physical;
# the image is all wired (one r-x mapping: 1M is less than the code segment); the heap
# has grown by one 16-page chunk.
BOOT_ROWS = [
    "           -      -     0      -     0    1    1     16M    phys physmap",
    "           -      -     0      -     0    1    1      1M      1M kernel image",
    "           -      -     0      -     0    1    1     64k     64k kernel heap",
    "           -      -     0      -     0    1    1      4k    phys hpet",
]
ROWS = {
    "held": "           -      -  2010      -     0    0    1     12k      4k held",
    "mapped": "           -      -  2011      -     1    1    1      8k      8k mapped",
    "kmapped": "           -      -  2012      -     0    1    1      4k      0B kmapped",
    "konly": "           -      -     0      -     0    0    1      4k      4k konly",
    "kstack": "           -      -     0      -     0    1    1      4k      0B kstack",
    "regs": "           -      -  2013      -     0    1    1      8k    phys regs",
    "clone": "           -      -  2014   2011     0    1    1      4k      4k clone",
}


def test_vmos_all_lists_every_vmo_oldest_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "vmos", "all", kernel=vmos_world()).splitlines() == [
        "All VMOs, oldest to newest:",
        VMO_HEADER,
        *BOOT_ROWS,
        *ROWS.values(),
        VMO_HEADER,
    ]


def test_vmos_hidden_skips_what_a_user_aspace_maps(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "vmos", "hidden", kernel=vmos_world()).splitlines() == [
        '"Hidden" VMOs, oldest to newest:',
        VMO_HEADER,
        *BOOT_ROWS,
        ROWS["held"],  # a handle, no mapping
        ROWS["kmapped"],  # a user koid, but only the kernel maps it
        ROWS["konly"],  # only the kernel knows it
        VMO_HEADER,
    ]


def test_vmos_unit_option(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "mx", "vmos", "hidden", "-uB", kernel=vmos_world())
    assert out.splitlines()[6] == (
        "           -      -  2010      -     0    0    1  12288B   4096B held"
    )
    out = ok(capsys, "mx", "vmos", "hidden", "-uM", kernel=vmos_world())
    assert out.splitlines()[6] == (
        "           -      -  2010      -     0    0    1    0.0M    0.0M held"
    )
    # An unknown unit is marked with "?" by format_size; "-u" alone is the natural unit.
    out = ok(capsys, "mx", "vmos", "hidden", "-uq", kernel=vmos_world())
    assert out.splitlines()[6].endswith("1    ?12k     ?4k held")
    out = ok(capsys, "mx", "vmos", "hidden", "-u", kernel=vmos_world())
    assert out.splitlines()[6] == ROWS["held"]


def test_vmos_of_a_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert ok(capsys, "mx", "vmos", "2000", kernel=vmos_world()).splitlines() == [
        "process [2000]:",
        "Handles to VMOs:",
        VMO_HANDLE_HEADER,
        f"  {H1:10d} rwxmdt  2010      -     0    0    1     12k      4k held",
        f"  {H2:10d} rwxmdt  2011      -     1    1    1      8k      8k mapped",
        f"  {H3:10d} rwxmdt  2013      -     0    1    1      8k    phys regs",
        f"  {H4:10d} rwxmdt  2014   2011     0    1    1      4k      4k clone",
        # 12k + 8k + 8k + 4k; a physical VMO allocates nothing: 4k + 8k + 4k.
        "  total: 4 VMOs, size 32k, alloc 16k",
        "Mapped VMOs:",
        VMO_HEADER,
        ROWS["mapped"],
        ROWS["kstack"],
        ROWS["regs"],
        ROWS["clone"],
        VMO_HEADER,
    ]


def test_vmos_of_a_process_with_fixed_units(capsys: pytest.CaptureFixture[str]) -> None:
    lines = ok(capsys, "mx", "vmos", "2000", "-uk", kernel=vmos_world()).splitlines()
    assert lines[7] == "  total: 4 VMOs, size 32k, alloc 16k"
    assert lines[3] == f"  {H1:10d} rwxmdt  2010      -     0    0    1     12k      4k held"
    lines = ok(capsys, "mx", "vmos", "2000", "-uB", kernel=vmos_world()).splitlines()
    assert lines[7] == "  total: 4 VMOs, size 32768B, alloc 16384B"


def test_vmos_handle_rights(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel(16 << 20, wired_bytes=1 << 20)
    p = kernel.process_create(kernel.root_job, "p", koid=3000)
    kernel.process_start(p)
    kernel.vmo_create(P, "", owner=p, koid=3002, rights=Rights.READ | Rights.MAP)
    lines = ok(capsys, "mx", "vmos", "3000", kernel=kernel).splitlines()
    assert lines[3] == f"  {H1:10d} r--m--  3002      -     0    0    1      4k      0B -"


# --------------------------------------------------------------------------- asd

# A synthesized %p: the word after "as", "vmar", "map", "vmo" or "object".
POINTER = re.compile(r"\b(as|vmar|map|vmo|object) 0x[0-9a-f]{16}\b")


def masked(text: str) -> list[str]:
    """The lines with every synthesized pointer replaced by ``P``."""
    return [POINTER.sub(r"\1 P", line) for line in text.splitlines()]


def test_asd_of_a_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert masked(ok(capsys, "mx", "asd", "2000", kernel=vmos_world())) == [
        # The process, the root VMAR and four mappings hold the aspace; user: fl 0.
        "as P [0x1000000 0x7fffffffefff] sz 0x7ffffefff000 fl 0 ref 6 'proc:2000'",
        "  vmar P [0x1000000 0x7fffffffefff] sz 0x7ffffefff000 ref 1 'root'",
        # USER|READ|WRITE = 0x1c; mapped: its mapping, its clone and its handle.
        "    map P [0x10000000 0x10001fff] sz 0x2000 mmufl 0x1c vmo P/k2011 off 0 pages 2"
        " ref 1 'mapped'",
        "      vmo P/k2011 size 0x2000 pages 2 ref 3 parent k0",
        "    map P [0x20000000 0x20000fff] sz 0x1000 mmufl 0x1c vmo P/k0 off 0 pages 0"
        " ref 1 'kstack'",
        "      vmo P/k0 size 0x1000 pages 0 ref 1 parent k0",
        # A device range above RAM is mapped uncached: USER|READ|UNCACHED_DEVICE.
        "    map P [0x30000000 0x30001fff] sz 0x2000 mmufl 0xe vmo P/k2013 off 0 pages 0"
        " ref 1 'regs'",
        "      object P base 0xfe000000 size 0x2000 ref 2",
        "    map P [0x40000000 0x40000fff] sz 0x1000 mmufl 0x1c vmo P/k2014 off 0 pages 1"
        " ref 1 'clone'",
        "      vmo P/k2014 size 0x1000 pages 1 ref 2 parent k2011",
    ]


def test_asd_kernel_of_a_small_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert masked(ok(capsys, "mx", "asd", "kernel", kernel=vmos_world())) == [
        "as P [0xffffff8000000000 0xffffffffffffffff] sz 0x8000000000 fl 0x1 ref 8 'kernel'",
        "  vmar P [0xffffff8000000000 0xffffffffffffffff] sz 0x8000000000 ref 1 'root'",
        "    map P [0xffffff8000000000 0xffffff8fffffffff] sz 0x1000000000 mmufl 0x18"
        " vmo P/k0 off 0 pages 0 ref 1 'physmap'",
        "      object P base 0 size 0x1000000 ref 1",
        # The HPET's registers are above the 16M of RAM.
        "    map P [0xffffff9000000000 0xffffff9000000fff] sz 0x1000 mmufl 0x1a"
        " vmo P/k0 off 0 pages 0 ref 1 'hpet'",
        "      object P base 0xfed00000 size 0x1000 ref 1",
        "    map P [0xffffff9000001000 0xffffff9040000fff] sz 0x40000000 mmufl 0x18"
        " vmo P/k0 off 0 pages 16 ref 1 'kernel heap'",
        "      vmo P/k0 size 0x10000 pages 16 ref 1 parent k0",
        "    map P [0xffffffa000000000 0xffffffa000000fff] sz 0x1000 mmufl 0x18"
        " vmo P/k2012 off 0 pages 0 ref 1 'kmapped'",
        "      vmo P/k2012 size 0x1000 pages 0 ref 1 parent k0",
        # 1M of wired memory: all of it is the first (code) segment, r-x.
        "    vmar P [0xffffffff80100000 0xffffffff801fffff] sz 0x100000 ref 1 'kernel_image'",
        "      map P [0xffffffff80100000 0xffffffff801fffff] sz 0x100000 mmufl 0x28"
        " vmo P/k0 off 0 pages 256 ref 1 'kernel image'",
        "        vmo P/k0 size 0x100000 pages 256 ref 1 parent k0",
    ]


def test_asd_of_an_exited_process(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = vmos_world()
    app = kernel.root_job.processes[0]
    kernel.process_kill(app)
    assert k(capsys, "mx", "asd", "2000", kernel=kernel) == (
        1,
        "",
        "process [2000] has no address space\n",
    )


def dump_pointers(text: str) -> tuple[list[str], dict[str, str]]:
    """The pointers of a dump's as/vmar/map lines, and each VMO pointer with its koid;
    checks a VMO's own line repeats the pointer its map line names."""
    nodes: list[str] = []
    vmos: dict[str, str] = {}
    named = ""
    for line in text.splitlines():
        words = line.split()
        if words[0] in ("as", "vmar", "map"):
            nodes.append(words[1])
        if words[0] == "map":
            named, koid = words[words.index("vmo") + 1].split("/")
            assert vmos.setdefault(named, koid) == koid
        elif words[0] in ("vmo", "object"):
            assert words[1].split("/")[0] == named
    return nodes, vmos


def test_pointers_are_stable_aligned_and_distinct(capsys: pytest.CaptureFixture[str]) -> None:
    assert kernel_pointer(4, 1031) == kernel_pointer(4, 1031)
    assert kernel_pointer(4, 1031) != kernel_pointer(4, 1032)
    assert kernel_pointer(3, 0, 0x1000) != kernel_pointer(4, 0, 0x1000)
    heap = kernel_pointer(4, 1031)
    static = kernel_pointer(1, 0, static=True)
    assert heap % 16 == 0 and 0xFFFFFF8001000000 <= heap < 0xFFFFFF8005000000
    assert static % 16 == 0 and 0xFFFFFFFF80200000 <= static < 0xFFFFFFFF80300000

    nodes, vmos = dump_pointers(doc(capsys, "mx", "asd", "kernel"))
    assert len(set(nodes)) == len(nodes) and set(nodes).isdisjoint(vmos)
    assert len(vmos) == 4  # physmap, hpet, heap and image: four VMOs, all k0
    nodes, vmos = dump_pointers(doc(capsys, "mx", "asd", "1104"))
    assert len(set(nodes)) == len(nodes) and set(nodes).isdisjoint(vmos)
    assert len(set(vmos.values())) == len(vmos)  # one pointer per VMO koid
    # The same VMO has the same pointer in another process's dump.
    _, other = dump_pointers(doc(capsys, "mx", "asd", "1043"))
    assert {p for p, koid in vmos.items() if koid == "k1031"} == {
        p for p, koid in other.items() if koid == "k1031"
    }


# --------------------------------------------------------------------------- the doc world

# Lines of `k mx asd kernel`, as the printf formats of §10 print them: %p is 0x and
# lower-case hex; %#x (X) is a bare 0 or 0x and lower-case hex; names are quoted.
X = r"(?:0|0x[1-9a-f][0-9a-f]*)"
PTR = r"0x[0-9a-f]{16}"
SHAPES = {
    "as": rf"as {PTR} \[{X} {X}\] sz {X} fl {X} ref \d+ '[^']*'",
    "vmar": rf"vmar {PTR} \[{X} {X}\] sz {X} ref \d+ '[^']*'",
    "map": rf"map {PTR} \[{X} {X}\] sz {X} mmufl {X} vmo {PTR}/k\d+ off {X} pages \d+"
    r" ref \d+ '[^']*'",
    "vmo": rf"vmo {PTR}/k\d+ size {X} pages \d+ ref \d+ parent k\d+",
    "object": rf"object {PTR} base {X} size {X} ref \d+",
}


def shapes(text: str) -> list[tuple[int, str]]:
    """(depth, kind) of each line; fails on a line of no known shape."""
    out = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        kind = body.split(" ", 1)[0]
        assert indent % 2 == 0, line
        assert kind in SHAPES and re.fullmatch(SHAPES[kind], body), line
        out.append((indent // 2, kind))
    return out


def check_nesting(kinds: list[tuple[int, str]]) -> None:
    """as at depth 0, its root VMAR at 1; VMARs and maps one deeper than their VMAR; a
    VMO or physical object one deeper than the map before it."""
    assert kinds[:2] == [(0, "as"), (1, "vmar")]
    assert all(kind != "as" for _, kind in kinds[1:])
    for (pdepth, pkind), (depth, kind) in itertools.pairwise(kinds[1:]):
        if kind in ("vmo", "object"):
            assert (pkind, depth) == ("map", pdepth + 1)
        elif pkind == "vmar":  # its first child, or a later sibling of it or an ancestor
            assert 2 <= depth <= pdepth + 1
        else:  # after a map (or its VMO): a sibling of the map or of an ancestor
            map_depth = pdepth if pkind == "map" else pdepth - 1
            assert 2 <= depth <= map_depth


def test_seed_asd_kernel_shapes() -> None:
    seed = (GOLDEN_DIR / "k-mx-asd-kernel.seed.txt").read_text()
    lines = [line for line in seed.splitlines() if line != "..."]
    # The doc's first map line reads "p ages": a line break of the doc's source, not
    # kernel output (every other map line says "pages").
    assert sum(" p ages " in line for line in lines) == 1
    text = "\n".join(line.replace(" p ages ", " pages ") for line in lines)
    kinds = shapes(text)
    assert [kind for _, kind in kinds] == [
        "as",
        "vmar",
        "map",
        "vmo",
        "map",
        "object",
        "map",
        "object",
    ]
    check_nesting(kinds)


def test_doc_asd_kernel_has_the_seed_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    out = doc(capsys, "mx", "asd", "kernel")
    kinds = shapes(out)
    check_nesting(kinds)
    # Every kind of line the doc shows, and a nested VMAR (the kernel image's).
    assert {kind for _, kind in kinds} == set(SHAPES)
    assert (2, "vmar") in kinds
    lines = out.splitlines()
    # The doc's fixed parts: the kernel aspace's range, flags and name, its root VMAR's
    # range, the physmap's span and flags, and the HPET's physical page.
    assert re.fullmatch(
        rf"as {PTR} \[0xffffff8000000000 0xffffffffffffffff\] sz 0x8000000000 fl 0x1"
        r" ref \d+ 'kernel'",
        lines[0],
    )
    assert re.fullmatch(
        rf"  vmar {PTR} \[0xffffff8000000000 0xffffffffffffffff\] sz 0x8000000000 ref 1 'root'",
        lines[1],
    )
    assert "    map " in lines[2] and (
        " [0xffffff8000000000 0xffffff8fffffffff] sz 0x1000000000 mmufl 0x18 " in lines[2]
    )
    assert any(
        re.fullmatch(rf"      object {PTR} base 0xfed00000 size 0x1000 ref 1", x) for x in lines
    )


def test_sim_kernel_aspace_keeps_the_figures_consistent() -> None:
    snapshot = kernel_snapshot(build("doc"), Level.FULL)
    km = snapshot.kernel
    assert km is not None and km.parts_sum() == km.total_bytes
    aspace = snapshot.kernel_aspace
    assert aspace is not None
    image = [m for m in aspace.mappings() if m.name == "kernel image"]
    # code, rodata, data, bss and the boot allocations, back to back over the image VMO.
    assert [(m.perms, m.size) for m in image[:4]] == [
        (Perm.READ | Perm.EXECUTE, 0x180000),
        (Perm.READ, 0x80000),
        (Perm.READ | Perm.WRITE, 0x10000),
        (Perm.READ | Perm.WRITE, 0x100000),
    ]
    assert [m.vmo_offset for m in image] == [0, 0x180000, 0x200000, 0x210000, 0x310000]
    assert sum(m.size for m in image) == -(-km.wired_bytes // P) * P
    assert sum(m.committed_bytes for m in image) == km.wired_bytes


# --------------------------------------------------------------------------- hostile names

EVIL = "\x1b[2Jevil\n\u202e"
SAFE = "\\x1b[2Jevil\\n\\u202e"


def test_hostile_names_are_neutralised(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel(16 << 20, wired_bytes=1 << 20)
    job = kernel.job_create(kernel.root_job, EVIL, koid=3000)
    p = kernel.process_create(job, EVIL, koid=3001)
    kernel.process_start(p)
    vmo = kernel.vmo_create(P, EVIL, owner=p, koid=3003)
    kernel.vmar_map(root_vmar(p), vmo, addr=0x10000000)
    outputs = {
        "ps": ok(capsys, "mx", "ps", kernel=kernel),
        "jobs": ok(capsys, "mx", "jobs", kernel=kernel),
        "vmos": ok(capsys, "mx", "vmos", "all", kernel=kernel),
        "vmos pid": ok(capsys, "mx", "vmos", "3001", kernel=kernel),
        "asd": ok(capsys, "mx", "asd", "3001", kernel=kernel),
    }
    for cmd, out in outputs.items():
        assert "\x1b" not in out and "\u202e" not in out, cmd
        assert SAFE in out, cmd
    assert outputs["ps"].splitlines()[1].endswith(f"[{SAFE}]")
    assert outputs["jobs"].splitlines()[-1] == f"   3000 '{SAFE}'"
    assert outputs["asd"].splitlines()[2].endswith(f"'{SAFE}'")


# --------------------------------------------------------------------------- unreadable

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")
ROOT = LINUX and os.geteuid() == 0
PF_KTHREAD = 0x00200000


def _run_host(args: list[str]) -> str:
    """``mxmem --host ARGS`` in this process, as ``code NUL out NUL err``."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["--host", *args])
    finally:
        sys.stdout, sys.stderr = saved
    return f"{code}\x00{out.getvalue()}\x00{err.getvalue()}"


@pytest.mark.skipif(not ROOT, reason="needs Linux and root, to run as a user who cannot read")
@pytest.mark.parametrize("cmd", ["ht", "vmos", "asd"])
def test_a_process_the_user_cannot_read_is_said_so(cmd: str) -> None:
    # Was: `total: 0 handles` / `0 VMOs`, exit 0, as if the process held nothing.
    # The same command first as root: the child then imports nothing (the new user may
    # not be able to read where Python's packages are).
    _run_host(["k", "mx", cmd, str(os.getpid())])
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        code, out, err = as_nobody(lambda: _run_host(["k", "mx", cmd, str(sleeper.pid)])).split(
            "\x00"
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (code, out) == ("1", "")
    assert f"process [{sleeper.pid}] cannot be read (permission denied)\n" in err
    assert "Traceback" not in err


def _kernel_thread() -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[6]) & PF_KTHREAD:  # field 9, flags
            return int(entry)
    return None


@pytest.mark.skipif(not LINUX, reason="needs Linux /proc")
@pytest.mark.parametrize("cmd", ["ht", "vmos", "asd"])
def test_a_kernel_thread_has_no_handles_to_show(cmd: str) -> None:
    pid = _kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread visible (a PID namespace)")
    code, out, err = _run_host(["k", "mx", cmd, str(pid)]).split("\x00")
    assert (code, out) == ("1", "")
    assert err == (
        f"process [{pid}] is a kernel thread: it has no handles and no user address space\n"
    )


def test_wide_koids_widen_the_console_columns(capsys: pytest.CaptureFixture[str]) -> None:
    # A Linux host's koids are 16 digits: they overflowed %5llu/%6s/%7u and shifted the
    # rest of each row (the same defect as vmos and vmaps).
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    k.process_start(p)
    big = 2**52 + 5
    lib = k.vmo_create(P, "lib", owner=p, koid=big)
    assert p.aspace is not None and p.aspace.root is not None
    k.vmar_map(p.aspace.root, lib, addr=0x10000000)
    copy = k.vmo_clone(lib, 0, P, "copy", owner=p, koid=big + 1)
    head = "             koid           parent #chld #map #shr    size   alloc name"
    assert ok(capsys, "mx", "vmos", "1100", kernel=k).splitlines()[2:] == [
        "      handle rights" + head,
        f"  {k.handle_of(p, lib):>10} rwxmdt 4503599627370501                -     1    1"
        "    1      4k      0B lib",
        f"  {k.handle_of(p, copy):>10} rwxmdt 4503599627370502"
        " 4503599627370501     0    0    1      4k      0B copy",
        "  total: 2 VMOs, size 8k, alloc 0B",
        "Mapped VMOs:",
        "           -      -" + head,
        "           -      - 4503599627370501                -     1    1    1      4k      0B lib",
        "           -      -" + head,
    ]
    lines = ok(capsys, "mx", "ht", "1100", kernel=k).splitlines()
    assert lines[1:3] == [
        "handle                koid : type",
        f"{k.handle_of(p, lib):9x}  4503599627370501 : VMO",
    ]
