"""The Linux host's kernel figures: memory by use (``kstats -m``, memgraph's kernel
records), per-CPU counters (``kstats -c``), the kernel address space (``k mx asd
kernel``), kernel and hidden VMOs (``k mx vmos hidden``), descriptor counts (``k mx
ps``), and the Linux figures of ``ps``/``memgraph`` JSON (SwapPss, cgroup charges).

Parsers and mappings run on files captured from a real machine (``tests/fixtures/linux``,
see ``ORIGIN.kernel`` and ``capture_kernel.py``) and on hand-written samples; every
expected number was read off those files. The live tests start their own processes and
check what the tools print about them.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import io
import itertools
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from textwrap import dedent

import jsonschema
import pytest
from children import Spawn
from paths import FIXTURES
from users import as_nobody

from mxmem.cli import main
from mxmem.model import ASPACE_NOTE, Level, Mapping, Vmar, Vmo
from mxmem.render.kstats import cpu_row
from mxmem.render.units import format_size
from mxmem.sources.linux import HostSource
from mxmem.sources.linux.kernel import (
    cpu_stats,
    kernel_memory,
    memory_notes,
    read_cpus,
    read_kernel_memory,
)
from mxmem.sources.linux.kernelspace import kernel_space, read_kernel_space
from mxmem.sources.linux.procfs import parse_meminfo, parse_slab_free
from mxmem.sources.linux.reader import ProcReader
from mxmem.sources.linux.sysfiles import (
    caller_function,
    parse_interrupts,
    parse_iomem,
    parse_kallsyms_text,
    parse_modules,
    parse_schedstat,
    parse_system_stat,
    parse_vmallocinfo,
    parse_vmstat,
)

LINUX_FIXTURES = FIXTURES / "linux"
K = 1024
MiB = 1 << 20
PAGE = 4096
LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/smaps_rollup")
linux_only = pytest.mark.skipif(not LINUX, reason="needs Linux /proc with smaps_rollup (4.14+)")
ROOT = LINUX and os.geteuid() == 0
X86_64 = os.uname().machine == "x86_64"


def sample(name: str) -> str:
    return (LINUX_FIXTURES / name).read_text()


def koids() -> Callable[[tuple[object, ...]], int]:
    """A koid allocator like the host source's: one number per key."""
    table: dict[tuple[object, ...], int] = {}
    return lambda key: table.setdefault(key, len(table) + 1)


# --- /proc/stat, /proc/interrupts, /proc/vmstat, /proc/schedstat ------------------------


def test_system_stat_captured() -> None:
    stat = parse_system_stat(sample("stat"))
    # cpu  641221 6044 70960 285416 1027 0 375 2283 0 0: busy = user nice system irq
    # softirq steal, idle = idle iowait.
    assert stat.total == (-1, 641221 + 6044 + 70960 + 0 + 375 + 2283, 285416 + 1027)
    assert stat.cpus == (
        (0, 311911 + 2995 + 34609 + 0 + 100 + 1174, 152457 + 350),
        (1, 329310 + 3048 + 36351 + 0 + 275 + 1108, 132958 + 677),
    )
    assert (stat.context_switches, stat.interrupts) == (5969341, 2905642)


def test_system_stat_of_an_old_kernel_and_offline_cpus() -> None:
    # Linux 2.6.10: no steal/guest columns; cpu1 offline (absent), cpu2 listed first.
    text = "cpu  10 0 5 100 1 2 3\ncpu2 4 0 1 50 0 0 1\ncpu0 6 0 4 50 1 2 2\nctxt 77\n"
    stat = parse_system_stat(text)
    assert stat.total == (-1, 10 + 5 + 2 + 3, 101)
    assert [c.cpu for c in stat.cpus] == [0, 2]
    assert (stat.context_switches, stat.interrupts) == (77, None)


def test_interrupts_captured() -> None:
    irq = parse_interrupts(sample("interrupts"))
    assert irq.cpus == (0, 1)
    # The numbered lines 24..43, column by column (none of them is a timer here).
    assert irq.device == (1 + 261 + 94 + 3138 + 4823 + 1, 1 + 9 + 1008 + 1 + 147803 + 3972 + 20180)
    assert irq.timer == (1055072, 1069763)  # LOC
    assert irq.reschedule == (210175, 184862)  # RES
    assert irq.generic == (119287 + 32589, 85187 + 31852)  # CAL + TLB


def test_interrupts_arm64() -> None:
    text = dedent("""\
                   CPU0       CPU1       CPU3
         11:       900       800       700     GICv3  27 Level     arch_timer
         14:         5         0         0     GICv3  33 Level     uart-pl011
        IPI0:       40        30        20       Rescheduling interrupts
        IPI1:        7         6         5       Function call interrupts
        IPI2:        1         0         0       CPU stop interrupts
        Err:         0
    """)
    irq = parse_interrupts(text)
    assert irq.cpus == (0, 1, 3)  # CPU2 is offline
    assert irq.timer == (900, 800, 700)
    assert irq.device == (5, 0, 0)
    assert irq.reschedule == (40, 30, 20)
    assert irq.generic == (8, 6, 5)


def test_vmstat_and_schedstat() -> None:
    vmstat = parse_vmstat(sample("vmstat"))
    assert vmstat["pgfault"] == 56863045 and vmstat["nr_shmem"] > 0
    sched = parse_schedstat(sample("schedstat.sample"))
    assert sched == {0: (17, 50987), 1: (4, 36012)}  # (yld_count, pcount)
    assert parse_schedstat(sample("schedstat.sample").replace("version 15", "version 14")) == {}


def test_cpu_stats_captured() -> None:
    cpus, total = cpu_stats(
        parse_system_stat(sample("stat")),
        parse_interrupts(sample("interrupts")),
        parse_schedstat(sample("schedstat.sample")),
        parse_vmstat(sample("vmstat")),
        100,
    )
    cpu0 = cpus[0]
    assert (cpu0.cpu_number, cpu0.busy_ns, cpu0.idle_ns) == (0, 350789 * 10**7, 152807 * 10**7)
    assert (cpu0.context_switches, cpu0.yields) == (50987, 17)
    assert (cpu0.interrupts, cpu0.timer_interrupts) == (8318, 1055072)
    assert (cpu0.reschedule_ipis, cpu0.generic_ipis) == (210175, 151876)
    # Counters Linux does not keep per CPU (or at all) are unknown, not 0.
    unknown = ("preempts", "irq_preempts", "exceptions", "page_faults", "syscalls")
    assert all(getattr(cpu0, name) is None for name in (*unknown, "timer_callbacks"))
    assert total.cpu_number == -1
    assert (total.context_switches, total.page_faults, total.yields) == (5969341, 56863045, 21)
    assert total.interrupts == 8318 + 172974
    assert total.syscalls is None


def test_cpu_stats_without_interrupts_or_schedstat() -> None:
    cpus, total = cpu_stats(parse_system_stat(sample("stat")), None, {}, {}, 100)
    assert cpus[1].interrupts is None and cpus[1].context_switches is None
    assert total.context_switches == 5969341 and total.page_faults is None
    # Two samples: unknown counters stay unknown, known ones are differences.
    later = dataclasses.replace(total, context_switches=5969341 + 12, busy_ns=total.busy_ns + 10**9)
    row = cpu_row(total, later)
    assert row.cpu_number == -1 and row.counts[0] == 12 and row.counts[1] is None


# --- /proc/meminfo -> kernel memory ---------------------------------------------------------


def test_kernel_memory_captured_sums_to_total() -> None:
    kmem = kernel_memory(parse_meminfo(sample("meminfo")))
    assert kmem.parts_sum() == kmem.total_bytes == 24683656 * K
    assert memory_notes(kmem) == []


@linux_only
def test_kernel_memory_of_this_machine_sums_to_total() -> None:
    meminfo = parse_meminfo(Path("/proc/meminfo").read_text())
    kmem = kernel_memory(meminfo)
    assert kmem.total_bytes == meminfo["MemTotal"] > 0
    assert kmem.parts_sum() == kmem.total_bytes
    assert kmem.free_bytes == meminfo["MemFree"]
    assert kmem.mmu_bytes == meminfo["PageTables"] + meminfo.get("SecPageTables", 0)


def test_kernel_memory_without_vmapped_stacks_and_overlapping_counters() -> None:
    # VmallocUsed below KernelStack: the stacks cannot all be vmalloc'd, so all of
    # VmallocUsed is heap.
    kmem = kernel_memory({"MemTotal": 1000, "Slab": 100, "VmallocUsed": 30, "KernelStack": 50})
    assert (kmem.heap_total_bytes, kmem.wired_bytes, kmem.other_bytes) == (130, 50, 820)
    # Parts above the total: other is clamped at 0 and a note says by how much.
    over = kernel_memory({"MemTotal": 100, "MemFree": 90, "AnonPages": 20})
    assert over.other_bytes == 0 and over.parts_sum() == 110
    (note,) = memory_notes(over)
    assert "10 bytes more than MemTotal" in note


# --- /proc/vmallocinfo, iomem, modules, kallsyms -> the kernel address space ----------------


def test_vmallocinfo_captured() -> None:
    areas = parse_vmallocinfo(sample("vmallocinfo"))
    assert len(areas) == 100
    first = areas[0]
    assert first == (
        0x943AE248,
        0xF7E05D7B,
        20480,
        "irq_init_percpu_irqstack+0xed/0x120",
        "vmap",
        0,
        None,
        False,
    )
    assert not first.real_address  # kptr_restrict 0: hashed
    assert areas[1].kind == "ioremap" and areas[1].phys == 0xA0000
    stacks = [a for a in areas if a.caller == "kernel_clone+0xb8/0x400"]
    assert len(stacks) == 76 and {(a.kind, a.pages, a.size) for a in stacks} == {
        ("vmalloc", 4, 20480)
    }


def test_vmallocinfo_hand_written_lines() -> None:
    text = dedent("""\
        0xffffc90000000000-0xffffc90000005000   20480 kernel_clone+0xb8/0x400 pages=4 vmalloc N0=4
        0xffffc90000005000-0xffffc9000000a000   20480 unpurged vm_area
        0xffffc9000000a000-0xffffc9000000c000    8192 vm_map_ram
        0xffffc9000000c000-0xffffc9000000f000   12288 f+0x1/0x2 [mod] pages=2 vmalloc user
        0xffffc9000000f000-0xffffc90000011000    8192 pages=1 vmalloc
        garbage
    """)
    areas = parse_vmallocinfo(text)
    assert [(a.kind, a.caller, a.pages, a.user) for a in areas] == [
        ("vmalloc", "kernel_clone+0xb8/0x400", 4, False),
        ("unpurged", "", 0, False),
        ("vm_map_ram", "", 0, False),
        ("vmalloc", "f+0x1/0x2 [mod]", 2, True),
        ("vmalloc", "", 1, False),
    ]
    assert all(a.real_address for a in areas)
    assert caller_function("f+0x1/0x2 [mod]") == "f [mod]"
    assert caller_function("kernel_clone+0xb8/0x400") == "kernel_clone"


def test_iomem_kallsyms_modules() -> None:
    iomem = parse_iomem(sample("iomem"))
    ram = [r for r in iomem if r.name == "System RAM"]
    assert [(r.start, r.end, r.depth) for r in ram] == [
        (0x1000, 0x9FBFF, 0),
        (0x100000, 0xBFFFFFFF, 0),
        (0x100000000, 0x63FFFFFFF, 0),
    ]
    code = next(r for r in iomem if r.name == "Kernel code")
    assert (code.start, code.end, code.depth) == (0x1000000, 0x2276F47, 1)
    assert parse_kallsyms_text(sample("kallsyms.head")) == 0xFFFFFFFF81000000
    # Without privilege kallsyms shows every address as 0.
    assert parse_kallsyms_text("0000000000000000 T _text\n") is None
    modules = parse_modules(sample("modules.sample"))
    assert modules[0] == ("virtio_net", 69632, 0xFFFFFFFFC0A10000)
    assert modules[2] == ("failover", 16384, 0xFFFFFFFFC09F0000)  # a taint flag follows


def _space(**overrides: object) -> tuple[Mapping | Vmar, ...]:
    args: dict[str, object] = {
        "machine": "x86_64",
        "meminfo": parse_meminfo(sample("meminfo")),
        "koid_of": koids(),
        "page_size": PAGE,
        "vmalloc": parse_vmallocinfo(sample("vmallocinfo")),
        "iomem": parse_iomem(sample("iomem")),
        "text": 0xFFFFFFFF81000000,
        "modules": parse_modules(sample("modules.sample")),
    }
    args.update(overrides)
    space = kernel_space(**args)  # type: ignore[arg-type]
    assert space.aspace is not None
    return space.aspace.root.children


def _region(children: tuple[Mapping | Vmar, ...], name: str) -> Vmar:
    return next(c for c in children if isinstance(c, Vmar) and c.name == name)


def test_kernel_space_captured() -> None:
    koid_of = koids()
    space = kernel_space(
        machine="x86_64",
        meminfo=parse_meminfo(sample("meminfo")),
        koid_of=koid_of,
        page_size=PAGE,
        vmalloc=parse_vmallocinfo(sample("vmallocinfo")),
        iomem=parse_iomem(sample("iomem")),
        text=0xFFFFFFFF81000000,
        modules=parse_modules(sample("modules.sample")),
    )
    aspace = space.aspace
    assert aspace is not None
    assert (aspace.name, aspace.base, aspace.size) == ("kernel", 0xFFFF800000000000, 1 << 47)
    vmos = {v.koid: v for v in space.vmos}
    assert all(v.kernel_only for v in vmos.values())
    children = aspace.root.children
    assert [c.name for c in children] == [
        "physmap",
        "vmalloc",
        "vmemmap",
        "cpu_entry_area",
        "kernel_image",
        "modules",
    ]
    # The direct map: all of RAM up to the end of the highest System RAM range.
    physmap = children[0]
    assert isinstance(physmap, Mapping)
    assert (physmap.base, physmap.size) == (0xFFFF888000000000, 0x640000000)
    assert vmos[physmap.vmo_koid].physical and vmos[physmap.vmo_koid].phys_base == 0

    # vmalloc, addresses hashed: packed from the region's start, each area followed by
    # its guard page, which is not mapped.
    vmalloc = _region(children, "vmalloc")
    first, second = vmalloc.children[:2]
    assert isinstance(first, Mapping) and isinstance(second, Mapping)
    assert (first.base, first.size, first.committed_bytes) == (0xFFFFC90000000000, 0x4000, 0)
    assert vmos[first.vmo_koid].name == "vmap:irq_init_percpu_irqstack"
    assert (second.base, second.size) == (0xFFFFC90000000000 + 20480, 0x1000)
    acpi = vmos[second.vmo_koid]
    assert (acpi.name, acpi.physical, acpi.phys_base) == (
        "ioremap:acpi_os_map_iomem",
        True,
        0xA0000,
    )
    # The 76 thread stacks: one VMO; each run of consecutive stacks is one mapping.
    (stacks,) = [v for v in vmos.values() if v.name == "vmalloc:kernel_clone"]
    runs = stacks.num_mappings
    assert stacks.committed_bytes == 76 * 4 * PAGE
    assert stacks.size_bytes == 76 * 20480 - runs * PAGE
    mapped = [m for m in vmalloc.children if isinstance(m, Mapping)]
    assert sum(m.vmo_koid == stacks.koid for m in mapped) == runs < 76
    assert all(a.end < b.base for a, b in itertools.pairwise(mapped))
    # Every area of the file once, with its guard page between the mappings.
    areas = parse_vmallocinfo(sample("vmallocinfo"))
    assert sum(m.size for m in mapped) + len(mapped) * PAGE == sum(a.size for a in areas)
    assert mapped[-1].end + PAGE == 0xFFFFC90000000000 + sum(a.size for a in areas)

    # The kernel image: iomem's sections placed relative to _text.
    image = _region(children, "kernel_image")
    assert [(m.base, m.size, m.perms) for m in image.children if isinstance(m, Mapping)] == [
        (0xFFFFFFFF81000000, 0x1277000, 5),  # code r-x
        (0xFFFFFFFF82400000, 0xA0D000, 1),  # rodata r--
        (0xFFFFFFFF83000000, 0x27D000, 3),  # data rw-
        (0xFFFFFFFF83B32000, 0x124000, 3),  # bss rw-
    ]
    code = image.children[0]
    assert isinstance(code, Mapping)
    kimage = vmos[code.vmo_koid]
    assert all(isinstance(m, Mapping) and m.vmo_koid == kimage.koid for m in image.children)
    assert (kimage.name, kimage.size_bytes) == ("kernel image", 0x2C56000)
    assert kimage.committed_bytes == 0x1277000 + 0xA0D000 + 0x27D000 + 0x124000

    modules = _region(children, "modules")
    assert [(m.base, m.size, m.name) for m in modules.children if isinstance(m, Mapping)] == [
        (0xFFFFFFFFC09F0000, 0x4000, "module:failover"),
        (0xFFFFFFFFC0A00000, 0x5000, "module:net_failover"),
        (0xFFFFFFFFC0A10000, 0x11000, "module:virtio_net"),
    ]
    # The meminfo kernel VMOs come last; no [vmalloc] stand-in: vmallocinfo was read.
    tail = [(v.name, v.size_bytes, v.committed_bytes) for v in space.vmos[-5:]]
    assert tail == [
        ("[slab reclaimable]", 111468 * K, 111468 * K),
        ("[slab unreclaimable]", 27880 * K, 27880 * K),
        ("[page tables]", 3832 * K, 3832 * K),
        ("[percpu]", 712 * K, 712 * K),
        ("[kernel stacks]", 1648 * K, 1648 * K),
    ]
    assert not any(v.name == "[vmalloc]" for v in space.vmos)
    assert all(n.startswith(ASPACE_NOTE) for n in space.notes)
    assert any("hides vmalloc addresses" in n for n in space.notes)


def test_kernel_space_with_real_addresses_and_kaslr() -> None:
    text = dedent("""\
        0xffffb50040001000-0xffffb50040006000   20480 kernel_clone+0xb8/0x400 pages=4 vmalloc N0=4
        0xffffb50040006000-0xffffb5004000b000   20480 kernel_clone+0xb8/0x400 pages=4 vmalloc N0=4
        0xffffb5004000b000-0xffffb50040010000   20480 unpurged vm_area
        0xffffb50040010000-0xffffb50040012000    8192 pci_iomap+0x1/0x2 phys=0xfe000000 ioremap
        0xffffffffc0a10000-0xffffffffc0a22000   73728 execmem_alloc+0x1/0x2 pages=17 vmalloc
    """)
    children = _space(vmalloc=parse_vmallocinfo(text))
    # KASLR put vmalloc at 0xffffb500...: the region follows the areas (1 GiB aligned,
    # VmallocTotal long).
    assert [c.name for c in children] == [
        "physmap",
        "vmalloc",
        "vmemmap",
        "cpu_entry_area",
        "kernel_image",
        "modules",
    ]
    vmalloc = _region(children, "vmalloc")
    assert (vmalloc.base, vmalloc.size) == (0xFFFFB50040000000, 34359738367 * K)
    stacks, ioremap = vmalloc.children
    assert isinstance(stacks, Mapping) and isinstance(ioremap, Mapping)
    # Two adjacent stacks are one mapping at their real address, the last guard left out.
    assert (stacks.base, stacks.size, stacks.committed_bytes) == (
        0xFFFFB50040001000,
        2 * 20480 - PAGE,
        8 * PAGE,
    )
    assert (ioremap.base, ioremap.size) == (0xFFFFB50040010000, PAGE)
    # Moved above the default range instead: it ends where the kernel image begins, and
    # a default region it covers (cpu_entry_area) is dropped.
    high = text.replace("0xffffb500", "0xffffec00")
    children = _space(vmalloc=parse_vmallocinfo(high))
    assert [c.name for c in children] == [
        "physmap",
        "vmemmap",
        "vmalloc",
        "kernel_image",
        "modules",
    ]
    vmalloc = _region(children, "vmalloc")
    assert (vmalloc.base, vmalloc.end) == (0xFFFFEC0040000000, 0xFFFFFFFF80000000)
    # The module's area is the module itself, listed once, by name (from /proc/modules).
    modules = _region(children, "modules")
    assert [m.name for m in modules.children if isinstance(m, Mapping)] == [
        "module:failover",
        "module:net_failover",
        "module:virtio_net",
    ]


def test_kernel_space_without_privileges_or_off_x86() -> None:
    koid_of = koids()
    meminfo = parse_meminfo(sample("meminfo"))
    # As a normal user: vmallocinfo refused, iomem and kallsyms zeroed, modules at 0.
    space = kernel_space(
        machine="x86_64",
        meminfo=meminfo,
        koid_of=koid_of,
        page_size=PAGE,
        vmalloc=None,
        iomem=parse_iomem("00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n"),
        text=None,
        modules=[m._replace(address=0) for m in parse_modules(sample("modules.sample"))],
        vmalloc_reason="is readable by root only",
    )
    assert space.aspace is not None
    physmap, vmalloc = space.aspace.root.children[:2]
    assert isinstance(physmap, Mapping) and isinstance(vmalloc, Vmar)
    assert physmap.size == 24683656 * K // (2 * MiB) * (2 * MiB) + 2 * MiB  # MemTotal, 2M up
    assert vmalloc.children == ()
    assert (
        f"{ASPACE_NOTE}the vmalloc region is shown empty: /proc/vmallocinfo is readable by"
        " root only"
    ) in space.notes
    (stand_in,) = [v for v in space.vmos if v.name == "[vmalloc]"]
    assert stand_in.committed_bytes == 5908 * K  # VmallocUsed
    arm = kernel_space(
        machine="aarch64",
        meminfo=meminfo,
        koid_of=koids(),
        page_size=PAGE,
        vmalloc=None,
        iomem=[],
        text=None,
        modules=None,
    )
    assert arm.aspace is None and arm.notes == [
        f"{ASPACE_NOTE}the layout is known for x86-64 only, not aarch64"
    ]
    assert [v.name for v in arm.vmos][:2] == ["[slab reclaimable]", "[slab unreclaimable]"]


# --- a fixture tree: the tools end to end -------------------------------------------------


def _kernel_tree(root: Path) -> HostSource:
    """``root/proc`` with the captured system-wide files and no processes."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text("22 27 0:21 / /proc rw - proc proc rw\n")
    for name in ("meminfo", "slabinfo", "stat", "vmstat", "interrupts", "vmallocinfo", "iomem"):
        shutil.copy(LINUX_FIXTURES / name, proc / name)
    shutil.copy(LINUX_FIXTURES / "kallsyms.head", proc / "kallsyms")
    shutil.copy(LINUX_FIXTURES / "schedstat.sample", proc / "schedstat")
    shutil.copy(LINUX_FIXTURES / "modules.sample", proc / "modules")
    return HostSource(str(root))


class SeqFileReader(ProcReader):
    """Reads a fixture tree the way the kernel serves a seq_file: one ``read`` returns
    about a page of whole lines, so a reader must go on to the end."""

    def read(self, path: str) -> str:
        text = super().read(path)
        if len(text) <= PAGE:
            return text
        return text[: text.rindex("\n", 0, PAGE) + 1]


def test_multi_record_files_are_read_to_the_end(tmp_path: Path) -> None:
    _kernel_tree(tmp_path)
    reader = SeqFileReader(str(tmp_path))
    assert len(reader.read(f"{reader.proc}/slabinfo")) < len(sample("slabinfo"))
    figures = read_kernel_memory(reader, slab=True)
    assert figures is not None
    assert figures.memory.heap_free_bytes == parse_slab_free(sample("slabinfo")) == 9431016
    cpus, total = read_cpus(reader)
    assert len(cpus) == 2 and cpus[0].interrupts == 8318
    assert total is not None and total.page_faults == 56863045
    space = read_kernel_space(reader, figures.meminfo, koids())
    stacks = next(v for v in space.vmos if v.name == "vmalloc:kernel_clone")
    assert stacks.committed_bytes == 76 * 4 * PAGE


def test_fixture_tree_kstats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _kernel_tree(tmp_path)
    assert main(["kstats", "-c", "-m", "-n", "1", "-d", "0.01"], source=source) == 0
    out, err = capsys.readouterr()
    # The files do not change between the samples: zero everywhere Linux counts, "-"
    # where it does not.
    assert out == (
        "cpu    load sched (cs ylds pmpts irq_pmpts) excep pagef  sysc"
        " ints (hw  tmr tmr_cb) ipi (rs  gen)\n"
        "  0   0.00%         0    0     -         -      -     -     -        0    0      -"
        "        0    0\n"
        "  1   0.00%         0    0     -         -      -     -     -        0    0      -"
        "        0    0\n"
        "all   0.00%         0    0     -         -      -     0     -        0    0      -"
        "        0    0\n"
        "    total      free      VMOs     kheap     kfree     wired       mmu     other"
        " available\n"
        " 24105.1M  21844.0M   2057.2M    131.3M      9.0M      2.3M      3.8M     57.7M"
        "  22873.0M\n"
    )
    assert err == ""
    # kfree: the free objects of the captured slabinfo; kheap: the rest of the heap.
    assert parse_slab_free(sample("slabinfo")) // 1024 == 9209
    snapshot = source.snapshot(Level.KMEM)
    assert snapshot.kernel is not None
    assert snapshot.kernel.parts_sum() == snapshot.kernel.total_bytes
    assert len(snapshot.cpus) == 2 and snapshot.cpu_total is not None


def test_fixture_tree_asd_kernel_and_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _kernel_tree(tmp_path)
    assert main(["k", "mx", "asd", "kernel"], source=source) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("as ") and lines[0].endswith(
        "[0xffff800000000000 0xffffffffffffffff] sz 0x800000000000 fl 0x1 ref 55 'kernel'"
    )
    assert lines[2].endswith(
        "[0xffff888000000000 0xffff88863fffffff] sz 0x640000000 mmufl 0x18"
        f" vmo {lines[3].split()[1]}/k0 off 0 pages 0 ref 1 'physmap'"
    )
    assert lines[3].endswith("base 0 size 0x640000000 ref 1")
    code = next(ln for ln in lines if "[0xffffffff81000000 " in ln)
    assert code.endswith(
        "[0xffffffff81000000 0xffffffff82276fff] sz 0x1277000 mmufl 0x28"
        f" vmo {code.split()[-9].split('/')[0]}/k0 off 0 pages 4727 ref 1 'kernel image'"
    )
    # The caveats come after the dump, on stderr, and only from asd kernel.
    assert err.splitlines() == [
        f"k: note: {ASPACE_NOTE}the kernel hides vmalloc addresses (kptr_restrict 0 hashes"
        " them): areas are packed from the region's start in their order",
        f"k: note: {ASPACE_NOTE}regions are at x86-64's documented default bases; KASLR may"
        " have moved the direct map, vmalloc and vmemmap",
    ]
    assert main(["k", "mx", "vmos", "hidden"], source=source) == 0
    out, err = capsys.readouterr()
    assert err == ""
    # - - koid parent #chld #map #shr size alloc name
    rows = [ln.split(None, 9) for ln in out.splitlines()[2:-1]]
    by_name = {r[9]: r[2:9] for r in rows}
    # Kernel-only objects have koid 0; a physical one has no allocated pages.
    assert by_name["physmap"] == ["0", "-", "0", "1", "1", "25G", "phys"]
    assert by_name["vmalloc:kernel_clone"][5:] == ["1452k", "1216k"]
    assert by_name["[slab unreclaimable]"] == ["0", "-", "0", "0", "1", "27.2M", "27.2M"]
    assert rows[0][9] == "physmap" and rows[-1][9] == "[kernel stacks]"


# --- the live host ---------------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--host", *args])
    out, err = capsys.readouterr()
    return code, out, err


SLEEP = "import time\nwhile True: time.sleep(60)\n"

# stdin and stderr on /dev/null (2 files), stdout the pipe to the test, 3 more pipes
# (6 ends), a socket pair (2 sockets) and one eventfd.
KNOWN_FDS = (
    """
import os, socket
null = os.open("/dev/null", os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 2)
os.close(null)
pipes = [os.pipe() for _ in range(3)]
pair = socket.socketpair()
event = os.eventfd(0)
print(os.getpid(), flush=True)
"""
    + SLEEP
)

HOLD_MEMFD = (
    """
import os, sys
fd = os.memfd_create(sys.argv[1])
os.ftruncate(fd, 8 << 20)
print(os.getpid(), flush=True)
"""
    + SLEEP
)


@linux_only
def test_k_mx_ps_counts_descriptors_by_kind(
    spawn: Spawn, capsys: pytest.CaptureFixture[str]
) -> None:
    _, (pid,) = spawn(KNOWN_FDS)
    code, out, _ = run(capsys, "k", "mx", "ps")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "     id  #h:  #fi #so #pi #ev #tm #sg #ep #mf #db #ot [name]"
    (row,) = [ln for ln in lines if ln.split()[0] == pid]
    #                  #h    fi so pi ev tm sg ep mf db ot
    assert row.split()[1:12] == ["12:", "2", "2", "7", "1", "0", "0", "0", "0", "0", "0"]
    assert row.startswith(f"{int(pid):7d}  12:   2   2   7   1")
    code, out, _ = run(capsys, "k", "mx", "ps", "help")
    assert code == 0 and out.startswith("id  : process id number\n#h  : total number of file")
    assert "#db : number of dma-bufs\n" in out
    # ht names the descriptor kinds Magenta did not have.
    code, out, _ = run(capsys, "k", "mx", "ht", pid)
    assert code == 0
    kinds = [ln.split(" : ")[1] for ln in out.splitlines()[2:-1]]
    assert kinds == ["DEVICE", "PIPE", "DEVICE", *["PIPE"] * 6, "SOCKET", "SOCKET", "EVENTFD"]
    assert out.splitlines()[-1] == "total: 12 handles"


@pytest.mark.slow
@linux_only
def test_memfd_held_only_by_a_descriptor_is_hidden(
    spawn: Spawn, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"mxmem-hidden-{os.getpid()}"
    proc, _ = spawn(HOLD_MEMFD, name)
    row_name = f"/memfd:{name} (deleted)"

    def hidden_rows() -> list[list[str]]:
        code, out, _ = run(capsys, "k", "mx", "vmos", "hidden")
        assert code == 0
        rows = (ln.split(None, 9) for ln in out.splitlines())
        return [c for c in rows if c[9:] == [row_name]]

    ((_, _, koid, parent, chld, nmap, shr, size, alloc, _name),) = hidden_rows()
    assert int(koid) > 0 and (parent, chld, nmap, shr, size, alloc) == (
        "-",
        "0",
        "0",
        "1",
        "8M",
        "0B",
    )
    # `all` lists it too; once the process has exited, the memfd is gone.
    code, out, _ = run(capsys, "k", "mx", "vmos", "all")
    assert code == 0 and any(ln.endswith(f" {row_name}") for ln in out.splitlines())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert hidden_rows() == []


@linux_only
def test_sysv_segment_without_attachments_is_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    key = 0x6D780000 | (os.getpid() & 0xFFFF)
    shmid = libc.shmget(key, MiB, 0o1600)  # IPC_CREAT | 0600, never attached
    if shmid < 0:
        pytest.skip(f"shmget failed: {os.strerror(ctypes.get_errno())}")
    try:
        code, out, _ = run(capsys, "k", "mx", "vmos", "hidden")
        assert code == 0
        (row,) = [ln.split() for ln in out.splitlines() if ln.endswith(f" /SYSV{key:08x}")]
        assert row[2] != "0" and row[5:9] == ["0", "1", "1M", "0B"]  # #map #shr size alloc
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


@linux_only
def test_kstats_memory_on_the_host_sums_to_total(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "kstats", "-m", "-n", "1")
    assert code == 0
    header, values = out.splitlines()
    assert header.split() == [
        *("total", "free", "VMOs", "kheap", "kfree", "wired", "mmu", "other", "available")
    ]
    total_kb = int(Path("/proc/meminfo").read_text().split()[1])
    # Magenta's rounding, as kstats prints every size (not "%.1f": 24683772 kB is
    # 24105.2 MiB by %.1f and 24105.3M by sizes.c), so no machine's size breaks it.
    assert values.split()[0] == format_size(total_kb * 1024, "M")
    # (That the printed parts add up to it: test_kstats.py::
    # test_kstats_memory_on_the_host_adds_up.)
    snapshot = HostSource().snapshot(Level.KMEM)
    assert snapshot.kernel is not None
    assert snapshot.kernel.parts_sum() == snapshot.kernel.total_bytes
    assert not any("more than MemTotal" in n for n in snapshot.notes)


@linux_only
def test_kstats_cpu_on_the_host_has_a_row_per_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "kstats", "-c", "-n", "2", "-d", "0.1")
    assert code == 0
    online = sorted(
        int(w[3:])
        for w in Path("/proc/stat").read_text().split()
        if w[3:].isdigit() and w.startswith("cpu")
    )
    reports = out.split("cpu    load")[1:]
    assert len(reports) == 2
    for report in reports:
        rows = [ln.split() for ln in report.splitlines()[1:]]
        assert [r[0] for r in rows] == [*map(str, online), "all"]
        for r in rows:
            assert r[1].endswith("%") and 0 <= float(r[1][:-1]) <= 100
            assert r[8] == "-"  # sysc: Linux counts no system calls
        # cs and pagef: system-wide only.
        assert rows[0][7] == "-" and rows[-1][2] != "-" and rows[-1][7] != "-"


@linux_only
@pytest.mark.skipif(not X86_64, reason="the kernel address space layout is x86-64's")
def test_asd_kernel_on_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "k", "mx", "asd", "kernel")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("as ") and lines[0].endswith("'kernel'")
    for name in ("physmap", "vmalloc", "kernel_image", "modules"):
        assert any(ln.endswith(f"'{name}'") for ln in lines), name
    if ROOT:
        assert any("'vmalloc:kernel_clone'" in ln or "'vmalloc:" in ln for ln in lines)
        assert "readable by root only" not in err


@linux_only
@pytest.mark.skipif(not (ROOT and X86_64), reason="switching to another user needs root")
def test_a_normal_user_is_told_what_the_kernel_hides() -> None:
    def tool(*args: str) -> Callable[[], str]:
        def work() -> str:
            out, err = io.StringIO(), io.StringIO()
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = out, err
            try:
                code = main(["--host", *args])
            finally:
                sys.stdout, sys.stderr = saved
            return f"{code}\x00{out.getvalue()}\x00{err.getvalue()}"

        return work

    # Run the tools once first, so that everything they import lazily is imported: the
    # child may not be allowed to read the interpreter's library (e.g. under /root).
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["--host", "k", "mx", "asd", "kernel"])
        main(["--host", "kstats", "-m", "-n", "1"])
    code, out, err = as_nobody(tool("k", "mx", "asd", "kernel")).split("\x00")
    assert code == "0" and out.startswith("as ")
    assert (
        f"k: note: {ASPACE_NOTE}the vmalloc region is shown empty: /proc/vmallocinfo is"
        " readable by root only\n"
    ) in err
    # kstats -m: kfree is unknown without slabinfo, and says so (once).
    code, out, err = as_nobody(tool("kstats", "-m", "-n", "1")).split("\x00")
    header, values = out.splitlines()
    assert code == "0" and dict(zip(header.split(), values.split(), strict=True))["kfree"] == "0M"
    assert err == (
        "kstats: note: the kernel heap's free part (kfree, kernel/heap/free) is unknown and"
        " shown as 0: /proc/slabinfo is readable by root only\n"
    )


@pytest.mark.slow
@linux_only
def test_memgraph_of_the_host_validates_and_makes_a_treemap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "memgraph", "-vt")
    assert code == 0
    records = json.loads(out)
    schema = json.loads((files("mxmem") / "schemas" / "memgraph.schema.json").read_text())
    jsonschema.validate(records, schema)
    kernel = {r["id"]: r["size_bytes"] for r in records if r["type"] == "kernel"}
    parts = sum(v for k, v in kernel.items() if k.count("/") == 1 and k != "kernel/physmem")
    assert parts == kernel["kernel/physmem"] > 0
    snapshot = HostSource().snapshot(Level.TASKS)
    charged = {k for k, j in snapshot.jobs.items() if j.charge_bytes is not None}
    jobs = {r["koid"]: r for r in records if r["type"] == "j"}
    # Jobs come and go with the cgroups; the ones in both have a charge iff cgroup had one.
    for koid in charged & jobs.keys():
        assert jobs[koid]["charge_bytes"] >= 0
    graph = tmp_path / "mem.json"
    graph.write_text(out)
    page = tmp_path / "mem.html"
    # treemap reads the graph as a capture (`--host` and a file together would be two
    # answers to "what to map").
    code = main([f"--capture={graph}", "treemap", "-o", str(page)])
    assert code == 0, capsys.readouterr().err
    html = page.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html
    capsys.readouterr()
    assert main([f"--capture={graph}", "treemap", "--json"]) == 0
    tree_out = capsys.readouterr().out
    data = json.loads(tree_out)
    tree = data["tree"]
    names = [c["name"] for c in tree["children"]]
    assert tree["name"] == "All physical memory" and "VMOs/processes" in names
    assert {"free", "heap", "wired", "mmu"} <= set(names)
    # The processes' VMOs fit in the kernel's VMO memory (an anonymous VMO counts its
    # PSS, so memory shared copy-on-write after fork is not counted once per process);
    # a little slack for processes that grew between the two reads.
    assert data["unknown_clamped_bytes"] <= kernel["kernel/vmo"] // 20


@linux_only
def test_ps_json_of_the_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "ps", "--json")
    assert code == 0
    rows = json.loads(out)
    schema = json.loads((files("mxmem") / "schemas" / "ps.schema.json").read_text())
    jsonschema.validate(rows, schema)
    processes = [r for r in rows if r["type"] == "p"]
    assert processes and all("swap_pss_bytes" in r for r in processes)
    assert all(r["swap_pss_bytes"] is None for r in processes if r["pss_bytes"] is None)
    assert not any("swap_pss_bytes" in r for r in rows if r["type"] == "j")


def _swap_tree(root: Path) -> HostSource:
    """One process (the captured child, pid 100) with 2 MiB of SwapPss (and 8 MiB of
    Swap, which must not count), in a v2 cgroup with a charge."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    shutil.copy(LINUX_FIXTURES / "meminfo", proc / "meminfo")
    cgroup = root / "sys" / "fs" / "cgroup"
    (cgroup / "app").mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("memory\n")
    (cgroup / "app" / "memory.current").write_text("33554432\n")
    (proc / "self" / "mountinfo").write_text(
        "22 27 0:21 / /proc rw - proc proc rw\n"
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    )
    child = proc / "100"
    child.mkdir()
    shutil.copy(LINUX_FIXTURES / "child.stat", child / "stat")
    status = (LINUX_FIXTURES / "child.status").read_text()
    (child / "status").write_text(status.replace("Tgid:\t22496", "Tgid:\t100"))
    rollup = (LINUX_FIXTURES / "child.smaps_rollup").read_text()
    rollup = rollup.replace("SwapPss:               0 kB", "SwapPss:            2048 kB")
    rollup = rollup.replace("Swap:                  0 kB", "Swap:               8192 kB")
    (child / "smaps_rollup").write_text(rollup)
    (child / "cgroup").write_text("0::/app\n")
    return HostSource(str(root))


def test_ps_swap_pss_and_cgroup_charge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _swap_tree(tmp_path)
    schema = json.loads((files("mxmem") / "schemas" / "ps.schema.json").read_text())
    assert main(["ps", "--json"], source=source) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    jsonschema.validate(rows, schema)
    root, app, child = rows
    assert (child["pss_bytes"], child["swap_pss_bytes"]) == (8227 * K, 2048 * K)
    assert app["cgroup_charge_bytes"] == 32 * MiB and "cgroup_charge_bytes" not in root
    assert app["pss_bytes"] == root["pss_bytes"] == 8227 * K
    assert err == ""  # the rows carry swap_pss_bytes: no note
    assert main(["ps", "--swap", "--json"], source=source) == 0
    rows = json.loads(capsys.readouterr().out)
    jsonschema.validate(rows, schema)
    # PSS + SwapPss (never Swap), for the process and its jobs.
    assert [r["pss_bytes"] for r in rows] == [(8227 + 2048) * K] * 3
    assert main(["ps", "--units=k"], source=source) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[3].split()[1] == "8227k"
    assert err == (
        "ps: note: 2M of the processes' memory is swapped out (SwapPss) and not in PSS;"
        " --swap includes it\n"
    )
    assert main(["ps", "--swap", "--units=k"], source=source) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[3].split()[1] == "10275k" and err == ""
    # memgraph: the job's charge, additive to the 2017 format.
    assert main(["memgraph"], source=source) == 0
    records = json.loads(capsys.readouterr().out)
    memgraph_schema = json.loads((files("mxmem") / "schemas" / "memgraph.schema.json").read_text())
    jsonschema.validate(records, memgraph_schema)
    jobs = [r for r in records if r["type"] == "j"]
    assert [j.get("charge_bytes") for j in jobs] == [None, 32 * MiB]
    # And the sim's JSON has neither field.
    assert main(["--sim", "ps", "--json"]) == 0
    sim_rows = json.loads(capsys.readouterr().out)
    assert not any("swap_pss_bytes" in r or "cgroup_charge_bytes" in r for r in sim_rows)


def test_schemas_reject_the_linux_fields_on_the_wrong_rows() -> None:
    schema = json.loads((files("mxmem") / "schemas" / "ps.schema.json").read_text())
    job = {
        "type": "j",
        "koid": 1,
        "parent_koid": None,
        "depth": 0,
        "name": "root",
        "pss_bytes": 0,
        "private_bytes": 0,
        "shared_bytes": None,
    }
    jsonschema.validate([{**job, "cgroup_charge_bytes": 5}], schema)
    for bad in ({**job, "swap_pss_bytes": 0}, {**job, "cgroup_charge_bytes": -1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([bad], schema)
    process = {**job, "type": "p", "shared_bytes": 0, "parent_koid": 1}
    jsonschema.validate([{**process, "swap_pss_bytes": None}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**process, "cgroup_charge_bytes": 1}], schema)


def test_notes_about_the_kernel_aspace_only_reach_asd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _kernel_tree(tmp_path)
    snapshot = source.snapshot(Level.FULL)
    assert snapshot.kernel_aspace_notes
    assert all(n.startswith(ASPACE_NOTE) for n in snapshot.kernel_aspace_notes)
    assert not any(n.startswith(ASPACE_NOTE) for n in snapshot.notes)
    assert main(["memgraph", "-v"], source=source) == 0
    assert ASPACE_NOTE not in capsys.readouterr().err
    vmos = snapshot.vmos.values()
    assert all(isinstance(v, Vmo) and v.kernel_only for v in vmos)
