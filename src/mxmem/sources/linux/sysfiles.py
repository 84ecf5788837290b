"""Pure parsers for the system-wide kernel files behind ``kstats`` and ``k mx``:
``/proc/stat``, ``/proc/interrupts``, ``/proc/vmstat``, ``/proc/schedstat``,
``/proc/vmallocinfo``, ``/proc/iomem``, ``/proc/modules`` and the head of
``/proc/kallsyms``.

Like :mod:`.procfs`, every function takes the text of one file and returns values: no
I/O, no clock. Texts are split on ``"\\n"`` only. Numbers stay in the file's units
(jiffies, counts, bytes); :mod:`.kernel` and :mod:`.kernelspace` convert them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "CpuTimes",
    "Interrupts",
    "IomemRange",
    "KernelModule",
    "SchedCpu",
    "SystemStat",
    "VmallocArea",
    "caller_function",
    "parse_interrupts",
    "parse_iomem",
    "parse_kallsyms_text",
    "parse_modules",
    "parse_schedstat",
    "parse_system_stat",
    "parse_vmallocinfo",
    "parse_vmstat",
]


# --- /proc/stat --------------------------------------------------------------------------


class CpuTimes(NamedTuple):
    """One ``cpu`` line of ``/proc/stat`` in USER_HZ ticks (``sysconf(_SC_CLK_TCK)``)."""

    cpu: int  # -1 for the first line, the sum over all CPUs
    busy: int  # user + nice + system + irq + softirq + steal
    idle: int  # idle + iowait


class SystemStat(NamedTuple):
    total: CpuTimes
    cpus: tuple[CpuTimes, ...]  # the online CPUs, in CPU number order
    context_switches: int | None  # "ctxt", since boot, all CPUs together
    interrupts: int | None  # "intr" first number: every interrupt since boot


def _times(label: str, values: list[str]) -> CpuTimes:
    # user nice system idle iowait irq softirq steal guest guest_nice; older kernels
    # print fewer. guest time is already inside user (and guest_nice inside nice).
    v = [int(x) for x in values[:8]] + [0] * (8 - min(len(values), 8))
    user, nice, system, idle, iowait, irq, softirq, steal = v
    cpu = -1 if label == "cpu" else int(label[3:])
    return CpuTimes(cpu, user + nice + system + irq + softirq + steal, idle + iowait)


def parse_system_stat(text: str) -> SystemStat:
    total = CpuTimes(-1, 0, 0)
    cpus: list[CpuTimes] = []
    ctxt = intr = None
    for line in text.split("\n"):
        words = line.split()
        if not words:
            continue
        key = words[0]
        if key == "cpu":
            total = _times(key, words[1:])
        elif key.startswith("cpu") and key[3:].isdigit():
            cpus.append(_times(key, words[1:]))
        elif key == "ctxt" and len(words) > 1:
            ctxt = int(words[1])
        elif key == "intr" and len(words) > 1:
            intr = int(words[1])
    cpus.sort(key=lambda c: c.cpu)
    return SystemStat(total, tuple(cpus), ctxt, intr)


# --- /proc/interrupts ---------------------------------------------------------------------


class Interrupts(NamedTuple):
    """Interrupts received per CPU since boot, by the kind ``kstats -c`` shows; each
    tuple is parallel to ``cpus`` (the CPU numbers of the file's columns)."""

    cpus: tuple[int, ...]
    device: tuple[int, ...]  # numbered IRQ lines (devices), except timers
    timer: tuple[int, ...]  # the local timer (x86 LOC) and numbered timer IRQs
    reschedule: tuple[int, ...]  # x86 RES, arm64 "IPI0: Rescheduling interrupts"
    generic: tuple[int, ...]  # function-call and TLB-shootdown IPIs (x86 CAL, TLB; arm64 IPIn)


# x86's named lines that are IPIs a CPU receives from another (arch/x86/kernel/irq.c).
_RESCHEDULE = frozenset({"RES"})
_GENERIC = frozenset({"CAL", "TLB"})
_LOCAL_TIMER = frozenset({"LOC"})


def parse_interrupts(text: str) -> Interrupts:
    """``/proc/interrupts``. The header names the CPU columns (``CPU0 CPU1 ...``); each
    line has a label, one count per column (``ERR``/``MIS`` have a single system-wide
    count and are skipped), then the chip and action names."""
    lines = text.split("\n")
    header = lines[0].split() if lines else []
    cpus = tuple(int(w[3:]) for w in header if w.startswith("CPU") and w[3:].isdigit())
    n = len(cpus)
    sums = {kind: [0] * n for kind in ("device", "timer", "reschedule", "generic")}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        if not sep:
            continue
        label = label.strip()
        words = rest.split()
        counts = []
        for word in words[:n]:
            if not word.isdigit():
                break
            counts.append(int(word))
        if len(counts) != n:
            continue  # a system-wide count (ERR, MIS) or a malformed line
        description = " ".join(words[n:])
        if label.isdigit():
            # The action name ends the line: "timer" (x86 IRQ 0), "arch_timer" (arm64).
            action = words[-1] if len(words) > n else ""
            kind = "timer" if "timer" in action else "device"
        elif label in _LOCAL_TIMER:
            kind = "timer"
        elif label in _RESCHEDULE or description.startswith("Rescheduling interrupts"):
            kind = "reschedule"
        elif label in _GENERIC or label.startswith("IPI"):
            kind = "generic"  # arm64/riscv: IPI1.. are function calls, stops, irq work
        else:
            continue  # NMI, spurious, thermal, MCE...: neither devices nor IPIs
        column = sums[kind]
        for i, count in enumerate(counts):
            column[i] += count
    return Interrupts(
        cpus,
        tuple(sums["device"]),
        tuple(sums["timer"]),
        tuple(sums["reschedule"]),
        tuple(sums["generic"]),
    )


# --- /proc/vmstat and /proc/schedstat ----------------------------------------------------


def parse_vmstat(text: str) -> dict[str, int]:
    """``/proc/vmstat``: ``name value`` lines (counts of pages or events)."""
    out: dict[str, int] = {}
    for line in text.split("\n"):
        name, _, value = line.partition(" ")
        value = value.strip()
        if name and value.lstrip("-").isdigit():
            out[name] = int(value)
    return out


class SchedCpu(NamedTuple):
    """The per-CPU scheduler counters of ``/proc/schedstat`` (CONFIG_SCHEDSTATS)."""

    yields: int  # yld_count: sched_yield() calls
    switches: int  # pcount: tasks switched in (rq_sched_info.pcount)


def parse_schedstat(text: str) -> dict[int, SchedCpu]:
    """``/proc/schedstat`` versions 15-17 (Documentation/scheduler/sched-stats.rst): a
    ``cpuN`` line holds yld_count, a legacy 0, sched_count, sched_goidle, ttwu_count,
    ttwu_local, rq_cpu_time, run_delay and pcount. Other versions: ``{}``."""
    out: dict[int, SchedCpu] = {}
    version = 0
    for line in text.split("\n"):
        words = line.split()
        if len(words) == 2 and words[0] == "version" and words[1].isdigit():
            version = int(words[1])
        elif (
            15 <= version <= 17
            and words
            and words[0].startswith("cpu")
            and words[0][3:].isdigit()
            and len(words) >= 10
            and all(w.isdigit() for w in words[1:10])
        ):
            out[int(words[0][3:])] = SchedCpu(yields=int(words[1]), switches=int(words[9]))
    return out


# --- /proc/vmallocinfo ---------------------------------------------------------------------


class VmallocArea(NamedTuple):
    """One area of the kernel's vmalloc space (``mm/vmalloc.c`` ``vmalloc_info_show``).

    ``size`` includes the guard page that follows every area (``VM_NO_GUARD`` aside).
    ``start`` and ``end`` are real only when the kernel shows pointers: with
    ``kptr_restrict`` 0 ``%pK`` prints hashed values (small numbers, not kernel
    addresses); see :attr:`real_address`.
    """

    start: int
    end: int
    size: int
    caller: str  # "kernel_clone+0xb8/0x400", "" when the kernel recorded none
    kind: str  # "vmalloc", "vmap", "ioremap", "vm_map_ram", "unpurged" or "other"
    pages: int  # pages the area allocated itself (pages=N), 0 if none
    phys: int | None  # the physical address an ioremap maps (phys=)
    user: bool  # mappable to user space (vmalloc_user)

    @property
    def real_address(self) -> bool:
        return self.start >= 1 << 63


_KINDS = ("ioremap", "vmalloc", "vmap")


def parse_vmallocinfo(text: str) -> list[VmallocArea]:
    """Every line, in the file's order (ascending addresses). ``unpurged vm_area`` lines
    are lazily freed areas waiting for a TLB flush: they hold no pages."""
    areas: list[VmallocArea] = []
    for line in text.split("\n"):
        words = line.split()
        if len(words) < 3 or "-" not in words[0] or not words[1].isdigit():
            continue
        lo, _, hi = words[0].partition("-")
        try:
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        size = int(words[1])
        rest = words[2:]
        if rest[0] == "unpurged":
            areas.append(VmallocArea(start, end, size, "", "unpurged", 0, None, False))
            continue
        if rest[0] == "vm_map_ram":
            areas.append(VmallocArea(start, end, size, "", "vm_map_ram", 0, None, False))
            continue
        caller = ""
        i = 0
        if "=" not in rest[0] and rest[0] not in (*_KINDS, "user", "dma-coherent", "vpages"):
            caller = rest[0]
            i = 1
            # %pS names a module's function "func+0x10/0x20 [module]".
            if i < len(rest) and rest[i].startswith("[") and rest[i].endswith("]"):
                caller += " " + rest[i]
                i += 1
        pages, phys = 0, None
        flags: set[str] = set()
        for word in rest[i:]:
            key, eq, value = word.partition("=")
            if eq and key == "pages" and value.isdigit():
                pages = int(value)
            elif eq and key == "phys":
                try:
                    phys = int(value, 16)
                except ValueError:
                    phys = None
            elif not eq:
                flags.add(word)
        kind = next((k for k in _KINDS if k in flags), "other")
        areas.append(VmallocArea(start, end, size, caller, kind, pages, phys, "user" in flags))
    return areas


def caller_function(caller: str) -> str:
    """``kernel_clone+0xb8/0x400`` -> ``kernel_clone``; a module's ``f+0x1/0x2 [mod]``
    -> ``f [mod]``; a bare address stays as it is."""
    name, _, rest = caller.partition("+")
    module = rest.partition(" ")[2] if " " in rest else ""
    return f"{name} {module}" if module else name


# --- /proc/iomem, /proc/modules, /proc/kallsyms -------------------------------------------


class IomemRange(NamedTuple):
    """One line of ``/proc/iomem``: a physical range (inclusive end) and its owner."""

    start: int
    end: int
    name: str
    depth: int  # nesting level (two spaces per level)


def parse_iomem(text: str) -> list[IomemRange]:
    """The physical memory map. Readers without CAP_SYS_ADMIN see every address as 0;
    such a map is returned as it is (callers check for it)."""
    out: list[IomemRange] = []
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        span, sep, name = stripped.partition(" : ")
        if not sep:
            continue
        lo, _, hi = span.partition("-")
        try:
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        out.append(IomemRange(start, end, name, (len(line) - len(stripped)) // 2))
    return out


class KernelModule(NamedTuple):
    name: str
    size: int  # bytes of the module's memory
    address: int  # 0 when the reader may not see kernel addresses


def parse_modules(text: str) -> list[KernelModule]:
    """``/proc/modules``: ``name size refcount deps state address [taint]``."""
    out: list[KernelModule] = []
    for line in text.split("\n"):
        words = line.split()
        if len(words) < 6 or not words[1].isdigit():
            continue
        try:
            address = int(words[5], 16)
        except ValueError:
            address = 0
        out.append(KernelModule(words[0], int(words[1]), address))
    return out


_TEXT = re.compile(r"^([0-9a-fA-F]+) [Tt] _text$", re.MULTILINE)


def parse_kallsyms_text(text: str) -> int | None:
    """The address of ``_text`` (the start of the kernel image) in (the head of)
    ``/proc/kallsyms``; ``None`` if absent or shown as 0 (kptr_restrict, no privilege)."""
    match = _TEXT.search(text)
    if match is None:
        return None
    return int(match.group(1), 16) or None
