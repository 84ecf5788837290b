"""``mxmem ps``: Magenta's ps.c output, byte for byte, over small hand-built kernels.

Every figure below is computed by hand from the world the test builds (comments show the
sums); the 2017 rule is PSS = private + sum(committed // share_count) per mapping.
"""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files

import jsonschema
import pytest
from fixed import FixedSource, RecordingSource

from mxmem.cli import main
from mxmem.cli.ps import HELP
from mxmem.model import Level, Perm, Snapshot, ThreadState
from mxmem.sources import Source
from mxmem.sources.sim import PAGE_SIZE, Kernel, SimSource

PS_SCHEMA = json.loads((files("mxmem") / "schemas" / "ps.schema.json").read_text())


def shared_world() -> Kernel:
    """root j:1024 holds alpha p:1200 and job services j:1100 (beta p:1300, gamma p:1400).

    ``libc.so`` (4 committed pages) is mapped once in each of the three processes, so
    its share count is 3 and each mapping scales 16384 // 3 = 5461 bytes. alpha also
    maps ``heap``, 2 of 8 pages committed: 8192 private bytes.
    """
    k = Kernel(64 << 20, wired_bytes=1 << 20)
    root = k.root_job
    services = k.job_create(root, "services", koid=1100)
    alpha = k.process_create(root, "alpha", koid=1200)  # its root VMAR is 1201
    main_thread = k.thread_create(alpha, "main", koid=1210)
    worker = k.thread_create(alpha, "worker", koid=1211)
    beta = k.process_create(services, "beta", koid=1300)
    io = k.thread_create(beta, "io", koid=1310)
    gamma = k.process_create(services, "gamma", koid=1400)
    k.thread_create(gamma, "idle", koid=1410)  # never started: state "new"
    k.process_start(alpha, main_thread)
    k.thread_start(worker)
    k.thread_set_state(worker, ThreadState.BLOCKED)
    k.process_start(beta, io)
    k.thread_set_state(io, ThreadState.EXCEPTION)
    k.process_start(gamma)
    lib = k.vmo_create(4 * PAGE_SIZE, "libc.so", owner=alpha, koid=1500)
    k.vmo_write(lib, 0, 4 * PAGE_SIZE)
    for p in (alpha, beta, gamma):
        assert p.aspace is not None and p.aspace.root is not None
        k.vmar_map(p.aspace.root, lib, perms=Perm.READ | Perm.EXECUTE)
    heap = k.vmo_create(8 * PAGE_SIZE, "heap", owner=alpha, koid=1501)
    k.vmo_write(heap, 0, 2 * PAGE_SIZE)
    assert alpha.aspace is not None and alpha.aspace.root is not None
    k.vmar_map(alpha.aspace.root, heap)
    return k


HEADER = "TASK           PSS PRIVATE  SHARED NAME"
# alpha: PSS 8192 + 5461 = 13653 = 13.3k; beta, gamma: PSS 5461; services: 10922 = 10.7k;
# root: 24575 = 23k + 1023 B, which sizes.c rounds up to "24.0k".
TABLE = [
    HEADER,
    "j:1024       24.0k      8k         root",
    "  p:1200     13.3k      8k     16k alpha",
    "  j:1100     10.7k      0B         services",
    "    p:1300   5461B      0B     16k beta",
    "    p:1400   5461B      0B     16k gamma",
    HEADER,
]


def run_ps(
    capsys: pytest.CaptureFixture[str], *args: str, source: Source | None = None
) -> tuple[int, str, str]:
    code = main(["ps", *args], source=source or SimSource(shared_world()))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_with_header_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == TABLE
    assert out.endswith("\n")


def test_ps_asks_only_for_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    source = RecordingSource(shared_world())
    code, _, _ = run_ps(capsys, source=source)
    assert code == 0
    assert source.calls == [(Level.TASKS, None)]


def test_threads_add_state_column(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "-T")
    assert (code, err) == (0, "")
    # Threads at depth 3 (beta's) widen the ID column to 2*3 + 2 + 4 = 12.
    header = "TASK             PSS PRIVATE  SHARED   STATE NAME"
    assert out.splitlines() == [
        header,
        "j:1024         24.0k      8k                 root",
        "  p:1200       13.3k      8k     16k         alpha",
        "    t:1210                           running main",
        "    t:1211                           blocked worker",
        "  j:1100       10.7k      0B                 services",
        "    p:1300     5461B      0B     16k         beta",
        "      t:1310                            excp io",
        "    p:1400     5461B      0B     16k         gamma",
        "      t:1410                             new idle",
        header,
    ]


def test_suspended_and_dead_threads(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    p = k.process_create(k.root_job, "p", koid=1100)
    a = k.thread_create(p, "a", koid=1110)
    b = k.thread_create(p, "b", koid=1111)
    k.process_start(p, a)
    k.thread_start(b)
    k.thread_set_state(a, ThreadState.SUSPENDED)
    k.thread_set_state(b, ThreadState.DEAD)
    assert main(["ps", "-T"], source=SimSource(k)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3:5] == [
        "    t:1110                            susp a",
        "    t:1111                            dead b",
    ]


def test_jobs_only_measures_id_width_over_job_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "-J")
    assert (code, err) == (0, "")
    # Widest printed cell is "  j:1100": 8, not the 10 of the hidden process rows.
    assert out.splitlines() == [
        "TASK         PSS PRIVATE  SHARED NAME",
        "j:1024     24.0k      8k         root",
        "  j:1100   10.7k      0B         services",
        "TASK         PSS PRIVATE  SHARED NAME",
    ]


def test_jobs_only_with_threads_keeps_the_state_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_ps(capsys, "-J", "-T")
    assert code == 0
    assert out.splitlines()[1] == "j:1024     24.0k      8k                 root"


def test_job_option_starts_the_walk_at_depth_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "--job=1100")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "TASK         PSS PRIVATE  SHARED NAME",
        "j:1100     10.7k      0B         services",
        "  p:1300   5461B      0B     16k beta",
        "  p:1400   5461B      0B     16k gamma",
        "TASK         PSS PRIVATE  SHARED NAME",
    ]


def test_job_koid_is_parsed_like_strtoull(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_ps(capsys, "--job=0x44c")  # 0x44c == 1100
    assert code == 0
    assert out.splitlines()[1] == "j:1100     10.7k      0B         services"


def test_missing_job_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "--job=1200")  # a process, not a job
    assert (code, out, err) == (1, "", "ERROR: no job with koid 1200\n")


def test_units_fix_every_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_ps(capsys, "--units=k")
    assert code == 0
    assert out.splitlines()[1:6] == [
        "j:1024       24.0k      8k         root",
        "  p:1200     13.3k      8k     16k alpha",
        "  j:1100     10.7k      0k         services",
        "    p:1300    5.3k      0k     16k beta",
        "    p:1400    5.3k      0k     16k gamma",
    ]


def test_units_megabytes_go_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_ps(capsys, "--units=M")
    assert code == 0
    # 8192 B is 0 M with remainder 8 (of 1024): sizes.c prints "0.0M"; 0 is exactly "0M".
    assert out.splitlines()[3] == "  j:1100      0.0M      0M         services"


@pytest.mark.parametrize("unit", ["x", "", "kB", "m"])
def test_an_unknown_unit_is_a_usage_error_listing_the_units(
    capsys: pytest.CaptureFixture[str], unit: str
) -> None:
    # (ps.c passed it to format_size, which printed "?24.0k": a typo went unnoticed.)
    for args in ([f"--units={unit}"], ["--units", unit]):
        code, out, err = run_ps(capsys, *args)
        assert (code, out) == (2, "")
        assert err == f"ps: --units must be one of B, k, M, G, T, P, E, not {unit!r}\n"


@pytest.mark.parametrize("arg", ["-t", "x", "--jobs", "--units-x", "-Tq"])
def test_unknown_option_prints_help_to_stderr(capsys: pytest.CaptureFixture[str], arg: str) -> None:
    code, out, err = run_ps(capsys, "-T", arg)
    assert (code, out) == (2, "")
    shown = "-q" if arg == "-Tq" else arg  # the letter at fault in a bundle
    assert err == f"Unknown option: {shown}\n" + HELP


@pytest.mark.parametrize("value", ["", "abc", "12k"])
def test_a_bad_job_koid_is_a_one_line_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, out, err = run_ps(capsys, f"--job={value}")
    assert (code, out) == (2, "")
    assert err == f"ps: --job must be a job koid (a number), not {value!r}\n"


def test_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "--help")
    assert (code, err) == (0, "")
    assert out == (
        "Usage: ps [options]\n"
        "Options:\n"
        " -J             Only show jobs in the output\n"
        " -T             Include threads in the output\n"
        " --job=?        Show the given job and subjobs\n"
        "                where ? is the job id.\n"
        " --units=?      Fix all sizes to the named unit\n"
        "                where ? is one of [BkMGTPE]\n"
        " --json         Print machine-readable rows (a JSON array; with\n"
        "                --attribution=exact, an object of rows and summary)\n"
        " --swap         Include swapped-out memory in PSS: each process's\n"
        "                share of it (Linux SwapPss, never Swap); with\n"
        "                --attribution=exact, a SWAP column apart from ATTRIB\n"
        " --attribution=?\n"
        "                How memory is attributed, where ? is one of\n"
        "                2017   the default: PSS, PRIVATE and SHARED as\n"
        "                       Magenta's ps computed them\n"
        "                exact  every page counted once: ATTRIB = PRIVATE\n"
        "                       (pages only it uses) + SHARED (its share of\n"
        "                       pages others use too) + KERNEL (page tables,\n"
        "                       stacks, objects it causes); jobs sum their\n"
        "                       processes; then a summary of the whole system\n"
        "                       (memory no process is blamed for, by kind)\n"
        "                       that adds up to the total physical memory\n"
    )


def test_options_are_read_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    # ps.c stops at the first unknown option, before a later --help...
    code, out, err = run_ps(capsys, "-q", "--help")
    assert (code, out) == (2, "")
    assert err.startswith("Unknown option: -q\n")
    # ...and --help stops before a later unknown option.
    code, out, err = run_ps(capsys, "--help", "-q")
    assert (code, out, err) == (0, HELP, "")


@pytest.mark.parametrize("arg", ["-h", "--help", "--he", "-Th"])
def test_help_for_every_spelling(capsys: pytest.CaptureFixture[str], arg: str) -> None:
    assert run_ps(capsys, arg) == (0, HELP, "")


def test_deep_nesting_sets_id_width(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    job = k.root_job
    for depth in range(1, 6):
        job = k.job_create(job, f"level{depth}", koid=1024 + depth)
    p = k.process_create(job, "deep", koid=123456)
    k.process_start(p)
    assert main(["ps"], source=SimSource(k)) == 0
    out = capsys.readouterr().out.splitlines()
    # The process is at depth 6: id_w = 2*6 + 2 + len("123456") = 20.
    header = "TASK                     PSS PRIVATE  SHARED NAME"
    assert out == [
        header,
        "j:1024                    0B      0B         root",
        "  j:1025                  0B      0B         level1",
        "    j:1026                0B      0B         level2",
        "      j:1027              0B      0B         level3",
        "        j:1028            0B      0B         level4",
        "          j:1029          0B      0B         level5",
        "            p:123456      0B      0B      0B deep",
        header,
    ]


def test_dead_process_reports_zero(capsys: pytest.CaptureFixture[str]) -> None:
    k = shared_world()
    beta = k.root_job.jobs[0].processes[0]
    k.process_kill(beta)
    assert main(["ps", "--job=1100"], source=SimSource(k)) == 0
    # beta exited: the kernel answers BAD_STATE, ps prints zeros and adds nothing up.
    # gamma's mapping is now one of two, so it scales 16384 // 2 = 8192.
    assert capsys.readouterr().out.splitlines()[1:4] == [
        "j:1100        8k      0B         services",
        "  p:1300      0B      0B      0B beta",
        "  p:1400      8k      0B     16k gamma",
    ]


def unknown_beta_snapshot() -> Snapshot:
    snap = SimSource(shared_world()).snapshot(Level.TASKS)
    beta = dataclasses.replace(snap.processes[1300], unreadable="permission denied")
    return dataclasses.replace(
        snap,
        processes={**snap.processes, 1300: beta},
        notes=("figures come from a simulated kernel",),
    )


def test_unknown_process_prints_question_marks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, source=FixedSource(unknown_beta_snapshot()))
    assert code == 0
    # Job totals keep what is known: services = gamma's 5461 B; root = 13653 + 5461 =
    # 19114 B = 18k + 682 B, "18.7k".
    assert out.splitlines() == [
        HEADER,
        "j:1024       18.7k      8k         root",
        "  p:1200     13.3k      8k     16k alpha",
        "  j:1100     5461B      0B         services",
        "    p:1300       ?       ?       ? beta",
        "    p:1400   5461B      0B     16k gamma",
        HEADER,
    ]
    assert err == (
        "ps: note: figures come from a simulated kernel\n"
        "ps: note: the sizes of 1 process are unknown (shown as ?); job totals leave them out\n"
    )


def test_unknown_note_counts_only_the_shown_tree(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_ps(capsys, "--job=1100", source=FixedSource(unknown_beta_snapshot()))
    assert code == 0
    assert "the sizes of 1 process are unknown" in err
    snap = unknown_beta_snapshot()
    gamma = dataclasses.replace(snap.processes[1400], unreadable="gone")
    snap = dataclasses.replace(snap, processes={**snap.processes, 1400: gamma}, notes=())
    code, _, err = run_ps(capsys, source=FixedSource(snap))
    assert err == (
        "ps: note: the sizes of 2 processes are unknown (shown as ?); job totals leave them out\n"
    )


def test_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ps(capsys, "--json", "-T")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1  # one array on one line
    rows = json.loads(out)
    jsonschema.validate(rows, PS_SCHEMA)
    assert rows[:4] == [
        {
            "type": "j",
            "koid": 1024,
            "parent_koid": None,
            "depth": 0,
            "name": "root",
            "pss_bytes": 24575,
            "private_bytes": 8192,
            "shared_bytes": None,
        },
        {
            "type": "p",
            "koid": 1200,
            "parent_koid": 1024,
            "depth": 1,
            "name": "alpha",
            "pss_bytes": 13653,
            "private_bytes": 8192,
            "shared_bytes": 16384,
        },
        {
            "type": "t",
            "koid": 1210,
            "parent_koid": 1200,
            "depth": 2,
            "name": "main",
            "pss_bytes": None,
            "private_bytes": None,
            "shared_bytes": None,
            "state": "running",
        },
        {
            "type": "t",
            "koid": 1211,
            "parent_koid": 1200,
            "depth": 2,
            "name": "worker",
            "pss_bytes": None,
            "private_bytes": None,
            "shared_bytes": None,
            "state": "blocked",
        },
    ]
    assert [(r["type"], r["koid"], r["parent_koid"]) for r in rows[4:]] == [
        ("j", 1100, 1024),
        ("p", 1300, 1100),
        ("t", 1310, 1300),
        ("p", 1400, 1100),
        ("t", 1410, 1400),
    ]


def test_json_is_stable_and_sorted(capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = run_ps(capsys, "--json")
    _, second, _ = run_ps(capsys, "--json")
    assert first == second
    assert first.startswith('[{"depth":0,"koid":1024,"name":"root","parent_koid":null,')


def test_json_jobs_only_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_ps(capsys, "--json", "-J")
    assert code == 0
    rows = json.loads(out)
    jsonschema.validate(rows, PS_SCHEMA)
    assert [r["koid"] for r in rows] == [1024, 1100]
    code, out, _ = run_ps(capsys, "--json", source=FixedSource(unknown_beta_snapshot()))
    rows = json.loads(out)
    jsonschema.validate(rows, PS_SCHEMA)
    beta = next(r for r in rows if r["koid"] == 1300)
    assert (beta["pss_bytes"], beta["private_bytes"], beta["shared_bytes"]) == (None, None, None)
    assert rows[0]["pss_bytes"] == 19114


def test_schema_rejects_what_ps_never_writes() -> None:
    thread = {
        "type": "t",
        "koid": 1,
        "parent_koid": 2,
        "depth": 2,
        "name": "t",
        "pss_bytes": None,
        "private_bytes": None,
        "shared_bytes": None,
        "state": "running",
    }
    jsonschema.validate([thread], PS_SCHEMA)
    bad = [
        {**thread, "pss_bytes": 4096},  # a thread with a size
        {k: v for k, v in thread.items() if k != "state"},  # a thread without a state
        {**thread, "type": "j", "pss_bytes": 0, "private_bytes": 0},  # a job with a state
        {**thread, "state": "sleeping"},
        {**thread, "extra": 1},
    ]
    for row in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([row], PS_SCHEMA)


def test_schema_state_names_match_the_model() -> None:
    enum = PS_SCHEMA["$defs"]["row"]["properties"]["state"]["enum"]
    assert sorted(enum) == sorted(s.value for s in ThreadState)


def test_hostile_names_are_neutralised_in_text_only(capsys: pytest.CaptureFixture[str]) -> None:
    k = Kernel(16 << 20, wired_bytes=1 << 20)
    evil = "evil\x1b]0;pwned\x07\nj:1 fake\x9b2J"
    p = k.process_create(k.root_job, evil, koid=1100)
    k.process_start(p)
    assert main(["ps"], source=SimSource(k)) == 0
    out = capsys.readouterr().out
    assert (
        out.splitlines()[2]
        == "  p:1100      0B      0B      0B evil\\x1b]0;pwned\\x07\\nj:1 fake\\x9b2J"
    )
    assert "\x1b" not in out and "\x9b" not in out and len(out.splitlines()) == 4
    assert main(["ps", "--json"], source=SimSource(k)) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out  # JSON escapes it...
    assert json.loads(out)[1]["name"] == evil  # ...and decodes to the real name


def test_source_notes_go_to_stderr_after_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    snap = dataclasses.replace(
        SimSource(shared_world()).snapshot(Level.TASKS), notes=("one", "two\x1b[0m")
    )
    code, out, err = run_ps(capsys, source=FixedSource(snap))
    assert code == 0
    assert out.splitlines() == TABLE
    assert err == "ps: note: one\nps: note: two\\x1b[0m\n"
