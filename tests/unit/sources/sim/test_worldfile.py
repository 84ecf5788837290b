"""World files: a script of kernel operations in TOML or JSON (docs/worlds.md).

The equivalence tests build the same world in Python and from a file and compare whole
snapshots; the op tests check what each op did with figures worked out by hand; the
error tests pin the one-line messages a bad file gives, down to the op number.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from paths import REPO

from mxmem.cli import main
from mxmem.errors import SourceError
from mxmem.model import Level, Perm, ProcessState, Rights, Snapshot, ThreadState
from mxmem.sources import open_source
from mxmem.sources.sim import KERNEL, Kernel, SimSource
from mxmem.sources.sim.worlds import worldfile

K = 1024
M = K * K


def snap(kernel: Kernel) -> Snapshot:
    return SimSource(kernel).snapshot(Level.FULL)


# --------------------------------------------------------------------------- equivalence


def python_world() -> Kernel:
    """A driver with the vDSO, a heap and a shared buffer, and a peer mapping it."""
    k = Kernel(64 * M, wired_bytes=4 * M, first_koid=2000)
    drivers = k.job_create(k.root_job, "drivers")
    acpi = k.process_create(drivers, "acpisvc")
    main_thread = k.thread_create(acpi, "initial-thread")
    k.process_start(acpi, main_thread)
    vdso = k.vmo_create(28 * K, "vdso/full", owner=KERNEL)
    k.vmo_write(vdso, 0, 28 * K)
    assert acpi.aspace is not None and acpi.aspace.root is not None
    region = k.vmar_allocate(acpi.aspace.root, 28 * K, addr=0x47E1AB874000)
    k.vmar_map(region, vdso, size=24 * K, perms=Perm.READ, addr=0x47E1AB874000)
    k.vmar_map(
        region,
        vdso,
        vmo_offset=24 * K,
        size=4 * K,
        perms=Perm.READ | Perm.EXECUTE,
        addr=0x47E1AB87A000,
    )
    heap = k.vmo_create(2 * M, "jemalloc-heap", owner=acpi)
    k.vmo_write(heap, 0, 76 * K)
    k.vmar_map(acpi.aspace.root, heap)  # the lowest free gap
    k.handle_close(acpi, k.handle_of(acpi, heap))
    peer = k.process_create(drivers, "devhost:root")
    k.process_start(peer, k.thread_create(peer, "initial-thread"))
    shm = k.vmo_create(64 * K, "shm", owner=acpi)
    k.vmo_write(shm, 0, 32 * K)
    k.vmar_map(acpi.aspace.root, shm, perms=Perm.READ | Perm.WRITE)
    dup = k.handle_duplicate(acpi, k.handle_of(acpi, shm), Rights.READ | Rights.MAP)
    assert peer.aspace is not None and peer.aspace.root is not None
    k.handle_grant(peer, shm, Rights.READ | Rights.MAP)
    k.handle_close(acpi, dup)
    k.vmar_map(peer.aspace.root, shm, perms=Perm.READ, addr=0x6D0000000000)
    return k


EQUIVALENT_TOML = """\
[kernel]
memory = "64M"
wired = "4M"
first_koid = 2000

[[ops]]
op = "job"
as = "drivers"
name = "drivers"

[[ops]]
op = "process"
as = "acpi"
job = "drivers"
name = "acpisvc"

[[ops]]
op = "thread"
as = "main"
process = "acpi"
name = "initial-thread"

[[ops]]
op = "start"
process = "acpi"
thread = "main"

[[ops]]
op = "vmo"
as = "vdso"
owner = "kernel"
size = "28k"
name = "vdso/full"

[[ops]]
op = "write"
vmo = "vdso"

[[ops]]
op = "vmar"
as = "region"
parent = "acpi"
size = 28672
addr = 0x47e1ab874000

[[ops]]
op = "map"
vmar = "region"
vmo = "vdso"
size = "24k"
perms = "r--"
addr = 0x47e1ab874000

[[ops]]
op = "map"
vmar = "region"
vmo = "vdso"
offset = "24k"
size = "4k"
perms = "r-x"
addr = "0x47e1ab87a000"

[[ops]]
op = "vmo"
as = "heap"
owner = "acpi"
size = "2M"
name = "jemalloc-heap"

[[ops]]
op = "write"
vmo = "heap"
offset = 0
size = "76k"

[[ops]]
op = "map"
vmar = "acpi"
vmo = "heap"

[[ops]]
op = "close"
process = "acpi"
object = "heap"

[[ops]]
op = "process"
as = "peer"
job = "drivers"
name = "devhost:root"

[[ops]]
op = "thread"
as = "peer-main"
process = "peer"
name = "initial-thread"

[[ops]]
op = "start"
process = "peer"
thread = "peer-main"

[[ops]]
op = "vmo"
as = "shm"
owner = "acpi"
size = "64k"
name = "shm"

[[ops]]
op = "write"
vmo = "shm"
size = "32k"

[[ops]]
op = "map"
vmar = "acpi"
vmo = "shm"
perms = "rw-"

[[ops]]
op = "duplicate"
as = "dup"
process = "acpi"
object = "shm"
rights = "r--m--"

[[ops]]
op = "grant"
process = "peer"
object = "shm"
rights = ["read", "map"]

[[ops]]
op = "close"
handle = "dup"

[[ops]]
op = "map"
vmar = "peer"
vmo = "shm"
perms = "r--"
addr = 0x6d0000000000
"""


def toml_to_json(text: str) -> str:
    return json.dumps(tomllib.loads(text), indent=1)


def test_toml_world_equals_the_python_world() -> None:
    assert snap(worldfile.loads(EQUIVALENT_TOML, "w.toml")) == snap(python_world())


def test_json_world_equals_the_python_world(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_text(toml_to_json(EQUIVALENT_TOML))
    assert snap(worldfile.load(path)) == snap(python_world())


def test_world_file_through_open_source_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "world.toml"
    path.write_text(EQUIVALENT_TOML)
    source = open_source(f"sim:{path}")
    assert source.name == f"sim:{path}"
    expected = snap(python_world())
    assert source.snapshot(Level.FULL).processes == expected.processes

    assert main([f"--sim={path}", "ps"]) == 0
    # acpisvc: vdso 28k shared by one process only (#shr 1: both mappings in one aspace),
    # heap 76k, shm 32k with #shr 2 -> 104k private, 32k shared, PSS 104k + 16k.
    # devhost:root: shm 32k shared -> PSS 16k.
    assert capsys.readouterr().out.splitlines() == [
        "TASK           PSS PRIVATE  SHARED NAME",
        "j:2000        136k    104k         root",
        "  j:2001      136k    104k         drivers",
        "    p:2002    120k    104k     32k acpisvc",
        "    p:2008     16k      0B     32k devhost:root",
        "TASK           PSS PRIVATE  SHARED NAME",
    ]


# --------------------------------------------------------------------------- every op

# Every op at least once; comments give the koids (first_koid 5000: the root job).
ALL_OPS_TOML = """\
description = "every op"

[kernel]
memory = "32M"
wired = "4M"
other = "1M"
first_koid = 5000
cpus = 2

[[ops]]
op = "job"                  # 5001
as = "apps"
name = "apps"
[[ops]]
op = "process"              # 5002, root VMAR 5003
as = "app"
job = "apps"
name = "app"
[[ops]]
op = "thread"               # 5004
as = "main"
process = "app"
name = "main"
[[ops]]
op = "start"
process = "app"
thread = "main"
[[ops]]
op = "thread"               # 5005
as = "worker"
process = "app"
name = "worker"
[[ops]]
op = "start"
thread = "worker"
[[ops]]
op = "thread_state"
thread = "worker"
state = "blocked"
[[ops]]
op = "process"              # 5006, root VMAR 5007
as = "svc"
job = "root"
name = "svc"
[[ops]]
op = "start"
process = "svc"
[[ops]]
op = "vmo"                  # 5008
as = "buf"
owner = "app"
size = "16k"
name = "buf"
[[ops]]
op = "write"                # pages 1, 2
vmo = "buf"
offset = "4k"
size = "8k"
[[ops]]
op = "commit"               # page 0
vmo = "buf"
size = "4k"
[[ops]]
op = "decommit"             # page 2 again: pages 0 and 1 left
vmo = "buf"
offset = "8k"
size = "4k"
[[ops]]
op = "resize"
vmo = "buf"
size = "32k"
[[ops]]
op = "rename"
vmo = "buf"
name = "buffer"
[[ops]]
op = "clone"                # 5009
as = "copy"
vmo = "buf"
size = "8k"
owner = "app"
[[ops]]
op = "physical"             # 5010
as = "hpet"
owner = "app"
paddr = 0xfed00000
size = "4k"
name = "hpet"
[[ops]]
op = "vmo"                  # 5011, held by the kernel, then released: gone
as = "kvmo"
owner = "kernel"
size = "8k"
name = "kvmo"
[[ops]]
op = "release"
vmo = "kvmo"
[[ops]]
op = "vmo"                  # no koid: kernel-only
as = "hidden"
kernel_only = true
size = "4k"
name = "hidden"
[[ops]]
op = "vmar"                 # 5012
as = "reg"
parent = "app"
size = "64k"
addr = 0x100000000
name = "region"
[[ops]]
op = "map"
as = "bufmap"
vmar = "reg"
vmo = "buf"
size = "16k"
perms = "rw-"
addr = 0x100000000
[[ops]]
op = "map"
vmar = "app"
vmo = "hpet"
addr = 0x200000000
[[ops]]
op = "protect"              # all of bufmap r--
mapping = "bufmap"
perms = "r--"
[[ops]]
op = "protect"              # its first page rw- again (a split)
vmar = "reg"
addr = 0x100000000
size = "4k"
perms = "rw-"
[[ops]]
op = "unmap"                # its last page (another split)
vmar = "reg"
addr = 0x100003000
size = "4k"
[[ops]]
op = "map"                  # the lowest gap of reg: 0x100003000
as = "copymap"
vmar = "reg"
vmo = "copy"
perms = "r-x"
[[ops]]
op = "unmap"
mapping = "copymap"
[[ops]]
op = "vmar"                 # 5013
as = "sub"
parent = "reg"
size = "8k"
[[ops]]
op = "vmar_destroy"
vmar = "sub"
[[ops]]
op = "object"               # 5014
as = "event"
process = "app"
type = "event"
[[ops]]
op = "channel"              # 5015 in app, 5016 in svc
as = ["app-end", "svc-end"]
process = "app"
peer = "svc"
[[ops]]
op = "grant"
as = "h1"
process = "svc"
object = "buf"
rights = "r--mdt"
[[ops]]
op = "duplicate"
as = "h2"
handle = "h1"
rights = "r--m-t"
[[ops]]
op = "transfer"
as = "h3"
handle = "h2"
to = "app"
[[ops]]
op = "close"
handle = "h1"
[[ops]]
op = "duplicate"
as = "h4"
process = "app"
object = "buf"
[[ops]]
op = "kill"
process = "svc"
"""


@pytest.fixture(scope="module")
def all_ops() -> tuple[Kernel, Snapshot]:
    kernel = worldfile.loads(ALL_OPS_TOML, "all.toml")
    return kernel, snap(kernel)


def test_the_all_ops_world_uses_every_op() -> None:
    used = {op["op"] for op in tomllib.loads(ALL_OPS_TOML)["ops"]}
    assert used == set(worldfile.OPS)


def test_kernel_settings(all_ops: tuple[Kernel, Snapshot]) -> None:
    kernel, s = all_ops
    assert s.kernel is not None
    assert s.kernel.total_bytes == 32 * M
    assert s.kernel.wired_bytes == 4 * M
    assert s.kernel.other_bytes == 1 * M
    assert kernel.cpus == 2
    assert s.root_job_koid == 5000


def test_tasks_threads_and_kill(all_ops: tuple[Kernel, Snapshot]) -> None:
    _, s = all_ops
    assert s.jobs[5001].name == "apps"
    assert s.jobs[5000].process_koids == (5006,)
    app = s.processes[5002]
    assert app.state is ProcessState.RUNNING
    assert [(t.koid, t.name, t.state) for t in app.threads] == [
        (5004, "main", ThreadState.RUNNING),
        (5005, "worker", ThreadState.BLOCKED),
    ]
    svc = s.processes[5006]
    assert svc.state is ProcessState.DEAD
    assert svc.handles == ()
    assert svc.aspace is None


def test_vmo_ops(all_ops: tuple[Kernel, Snapshot]) -> None:
    _, s = all_ops
    buf = s.vmos[5008]
    assert (buf.name, buf.size_bytes, buf.committed_bytes) == ("buffer", 32 * K, 8 * K)
    assert (buf.num_children, buf.num_mappings) == (1, 2)
    copy = s.vmos[5009]
    assert (copy.name, copy.parent_koid, copy.size_bytes, copy.num_mappings) == (
        "buffer",  # a clone is named after its parent when it was made... after rename
        5008,
        8 * K,
        0,
    )
    assert s.vmos[5010].physical
    assert 5011 not in s.vmos  # released by the kernel, nothing else held it
    hidden = [v for v in s.vmos.values() if v.name == "hidden"]
    assert len(hidden) == 1 and hidden[0].kernel_only and hidden[0].user_koid == 0


def test_vmar_map_protect_unmap(all_ops: tuple[Kernel, Snapshot]) -> None:
    _, s = all_ops
    aspace = s.processes[5002].aspace
    assert aspace is not None
    region = aspace.root.children[0]
    assert not isinstance(region, tuple)
    assert (region.koid, region.name, region.base, region.size) == (
        5012,
        "region",
        0x100000000,
        64 * K,
    )
    rows = [(m.base, m.size, m.perms, m.vmo_koid, m.committed_bytes) for m in aspace.mappings()]
    assert rows == [
        # bufmap, split by the protect and the unmap; page 0 and 1 committed.
        (0x100000000, 4 * K, Perm.READ | Perm.WRITE, 5008, 4 * K),
        (0x100001000, 8 * K, Perm.READ, 5008, 4 * K),
        (0x200000000, 4 * K, Perm.READ | Perm.WRITE, 5010, 0),
    ]
    # The destroyed sub-VMAR and the unmapped clone left nothing behind.
    assert len(region.children) == 2


def test_handle_ops(all_ops: tuple[Kernel, Snapshot]) -> None:
    _, s = all_ops
    handles = s.processes[5002].handles
    assert handles is not None
    rmt = Rights.READ | Rights.MAP | Rights.TRANSFER
    assert [(h.koid, h.type.value, h.rights) for h in handles] == [
        (5008, "vmo", Rights.DEFAULT_VMO),
        (5009, "vmo", Rights.DEFAULT_VMO),
        (5010, "vmo", Rights.DEFAULT_VMO),
        (5014, "event", Rights.DUPLICATE | Rights.TRANSFER | Rights.READ),
        (5015, "channel", Rights.DUPLICATE | Rights.TRANSFER | Rights.READ),
        (5008, "vmo", rmt),  # h3, moved from svc
        (5008, "vmo", Rights.DEFAULT_VMO),  # h4
    ]


# --------------------------------------------------------------------------- the examples


def test_example_world_ps(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "examples" / "worlds" / "small-system.toml"
    assert main([f"--sim={path}", "ps"]) == 0
    # ld.so.1 has 600k of text committed and is mapped by acpisvc and sh (#shr 2); the
    # vDSO (28k) and the console buffer (32k) are shared by the same two:
    #   acpisvc: private 12k (data:ld.so.1); shared 600k + 28k + 32k = 660k;
    #            PSS = 12k + 300k + 14k + 16k = 342k.
    #   sh:      private 4k (.data) + 16k (stack) = 20k; PSS = 20k + 330k = 350k.
    #   devmgr:  its 1320k heap; it holds ld.so.1 by a handle but does not map it.
    assert capsys.readouterr().out.splitlines() == [
        "TASK           PSS PRIVATE  SHARED NAME",
        "j:1024       2012k   1352k         root",
        "  p:1027     1320k   1320k      0B bin/devmgr",
        "  j:1032      342k     12k         magenta-drivers",
        "    p:1033    342k     12k    660k /boot/bin/acpisvc",
        "  j:1040      350k     20k         magenta-services",
        "    p:1041    350k     20k    660k sh:console",
        "TASK           PSS PRIVATE  SHARED NAME",
    ]


def example_files() -> list[Path]:
    return sorted((REPO / "examples" / "worlds").glob("*.*"))


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_files_load(path: Path) -> None:
    s = snap(worldfile.load(path))
    assert s.processes


def test_the_docs_examples_are_true(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/worlds.md shows a world and the ps it gives; both must stay true."""
    doc = (REPO / "docs" / "worlds.md").read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    (shown,) = re.findall(r"```\n(TASK.*?)```", doc, re.DOTALL)
    path = tmp_path / "example.toml"
    path.write_text(example)
    assert main([f"--sim={path}", "ps"]) == 0
    assert capsys.readouterr().out == shown
    for block in re.findall(r"```json\n(.*?)```", doc, re.DOTALL):
        worldfile.loads(block, "docs/worlds.md", json_format=True)


# --------------------------------------------------------------------------- errors


def load_error(tmp_path: Path, text: str, suffix: str = ".toml") -> str:
    path = tmp_path / f"w{suffix}"
    path.write_text(text)
    with pytest.raises(SourceError) as info:
        worldfile.load(path)
    message = str(info.value)
    assert "\n" not in message
    prefix = f"{path}: "
    assert message.startswith(prefix)
    return message[len(prefix) :]


PROCESS = '[[ops]]\nop = "process"\nas = "app"\njob = "root"\nname = "app"\n'
VMO = '[[ops]]\nop = "vmo"\nas = "buf"\nowner = "app"\nsize = "4k"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[ops]]\nop = "mapp"\n', "op 1: unknown op 'mapp' (ops: job, process, thread, start,"),
        ('[[ops]]\nname = "x"\n', "op 1: missing 'op' (the operation to run)"),
        ("ops = [1]\n", "op 1: an op must be a table, not 1"),
        (
            PROCESS + VMO + '[[ops]]\nop = "map"\nvmar = "app"\nvmo = "buf"\nperm = "r--"\n',
            "op 3 (map): unknown key 'perm' (takes: vmar, vmo, offset, size, perms, addr, as)",
        ),
        (
            PROCESS + '[[ops]]\nop = "map"\nvmar = "app"\nvmo = "libc"\n',
            "op 2 (map): 'vmo': unknown name 'libc'",
        ),
        (
            PROCESS + '[[ops]]\nop = "map"\nvmar = "app"\nvmo = "app"\n',
            "op 2 (map): 'vmo': 'app' is a process, not a VMO",
        ),
        (
            PROCESS + '[[ops]]\nop = "vmo"\nowner = "root"\nsize = "4k"\n',
            "op 2 (vmo): 'owner': 'root' is a job, not a process or the kernel",
        ),
        ('[[ops]]\nop = "process"\nname = "x"\n', "op 1 (process): missing 'job'"),
        (
            PROCESS + '[[ops]]\nop = "vmo"\nowner = "app"\nsize = "lots"\n',
            "op 2 (vmo): 'size': invalid size 'lots': expected a non-negative number",
        ),
        (
            PROCESS + '[[ops]]\nop = "vmo"\nowner = "app"\nsize = "1.5"\n',
            "op 2 (vmo): 'size': invalid size '1.5': 3/2 is not a whole number of bytes",
        ),
        (
            PROCESS + '[[ops]]\nop = "vmo"\nowner = "app"\nsize = -4\n',
            "op 2 (vmo): 'size' must not be negative, not -4",
        ),
        (
            PROCESS + VMO + '[[ops]]\nop = "map"\nvmar = "app"\nvmo = "buf"\nperms = "rwz"\n',
            "op 3 (map): 'perms': bad permissions 'rwz' (expected e.g. 'r-x' or 'rw-')",
        ),
        (
            PROCESS
            + VMO
            + '[[ops]]\nop = "duplicate"\nprocess = "app"\nobject = "buf"\nrights = "rq"\n',
            "op 3 (duplicate): 'rights': unknown right 'q' in 'rq' (letters: rwxmdt)",
        ),
        (
            PROCESS + VMO + '[[ops]]\nop = "write"\nvmo = "buf"\nsize = "8k"\n',
            "op 3 (write): ERR_OUT_OF_RANGE: [0x0, +0x2000) outside VMO of 0x1000",
        ),
        (
            PROCESS
            + '[[ops]]\nop = "start"\nprocess = "app"\n[[ops]]\nop = "start"\nprocess = "app"\n',
            "op 3 (start): ERR_BAD_STATE: process 1025 already started",
        ),
        (
            PROCESS + PROCESS,
            "op 2 (process): 'as': the name 'app' is already taken",
        ),
        (
            '[[ops]]\nop = "job"\nas = "root"\nname = "x"\n',
            "op 1 (job): 'as': the name 'root' is already taken",
        ),
        (
            PROCESS + '[[ops]]\nop = "thread_state"\nthread = "app"\nstate = "sleepy"\n',
            "op 2 (thread_state): 'state': unknown thread state 'sleepy' "
            "(new, running, susp, blocked, dying, dead, excp)",
        ),
        (
            PROCESS + '[[ops]]\nop = "close"\nprocess = "app"\nobject = "root"\n',
            "op 2 (close): process 'app' has no handle to 'root'",
        ),
        (
            '[kernel]\nmemory = "3k"\n',
            "kernel: ERR_INVALID_ARGS: memory size must be a positive page multiple",
        ),
        (
            '[kernel]\nram = "1G"\n',
            "kernel: unknown key 'ram' (expected memory, wired, other, first_koid, cpus)",
        ),
        ('op = "job"\n', "unknown top-level key 'op' (expected description, kernel, ops)"),
        ('[ops]\nop = "job"\n', "'ops' must be a list of tables ([[ops]])"),
    ],
)
def test_bad_world_files(tmp_path: Path, text: str, expected: str) -> None:
    assert load_error(tmp_path, text).startswith(expected)


def test_toml_syntax_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[[ops]]\nop = "job"\nname = \n')
    assert message == "invalid TOML: Invalid value (at line 3, column 8)"


def test_json_syntax_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, '{"ops": [{"op": "job"} {}]}', suffix=".json")
    assert message == "invalid JSON: Expecting ',' delimiter (line 1, column 24)"


def test_json_errors_name_the_op_too(tmp_path: Path) -> None:
    text = json.dumps(
        {"ops": [{"op": "job", "name": "a", "as": "a"}, {"op": "kill", "process": "a"}]}
    )
    message = load_error(tmp_path, text, suffix=".json")
    assert message == "op 2 (kill): 'process': 'a' is a job, not a process"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(
        SourceError, match=r"^.*nowhere\.toml: cannot read world file: No such file"
    ):
        worldfile.load(path)


def test_cli_reports_a_bad_world_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(PROCESS + VMO + '[[ops]]\nop = "write"\nvmo = "buf"\nsize = "8k"\n')
    assert main([f"--sim={path}", "ps"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"mxmem: {path}: op 3 (write): ERR_OUT_OF_RANGE: [0x0, +0x2000) outside VMO of 0x1000\n"
    )


def test_a_failing_op_names_nothing(tmp_path: Path) -> None:
    # The kernel refused the op, so 'as' must not have bound: loading stops at the op.
    text = PROCESS + '[[ops]]\nop = "vmo"\nas = "big"\nowner = "app"\nsize = "8k"\nkoid = 1\n'
    assert load_error(tmp_path, text).startswith(
        "op 2 (vmo): ERR_INVALID_ARGS: koid 1 already passed"
    )
