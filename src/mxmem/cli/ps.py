"""``mxmem ps``: jobs, processes and threads with their memory (spec §2).

Options are read by the common option layer (:mod:`mxmem.cli.options`) in order, as
ps.c read them: ``-h``/``--help`` prints the help and stops, the first unknown argument
is an error, worded as ps.c worded it (``Unknown option: <arg>`` and the help).

One path for every rule: the figures come from :mod:`mxmem.accounting.figures` by the
rule ``--attribution`` selects (2017, Fuchsia's Summary on a capture of VMO lists, or
exact: the snapshot taken at ``Level.PAGES``, ATTRIB/PRIVATE/SHARED/KERNEL columns and a
summary of the whole system that adds up to its total physical memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TextIO

from mxmem.accounting.figures import NoPageFacts, figures, level_for, no_page_facts, rule_for
from mxmem.cli.common import Tool, print_notes, strtoull
from mxmem.cli.options import ATTRIBUTION_OPT, UNITS_OPT, Grammar, Opt, Wording, bad_value, parse
from mxmem.model import Level
from mxmem.render.exact import figures_notes
from mxmem.render.jsonout import write_json
from mxmem.render.ps import ps_columns, ps_json, ps_rows, write_ps
from mxmem.render.text import safe_text
from mxmem.render.units import format_size
from mxmem.sources import Source

# The August 2017 help, with the options later Zircon ps added (-J, --job), --json and
# --swap (for Linux, where memory can be swapped out).
HELP = """\
Usage: ps [options]
Options:
 -J             Only show jobs in the output
 -T             Include threads in the output
 --job=?        Show the given job and subjobs
                where ? is the job id.
 --units=?      Fix all sizes to the named unit
                where ? is one of [BkMGTPE]
 --json         Print machine-readable rows (a JSON array; with
                --attribution=exact, an object of rows and summary)
 --swap         Include swapped-out memory in PSS: each process's
                share of it (Linux SwapPss, never Swap); with
                --attribution=exact, a SWAP column apart from ATTRIB
 --attribution=?
                How memory is attributed, where ? is one of
                2017   the default: PSS, PRIVATE and SHARED as
                       Magenta's ps computed them
                exact  every page counted once: ATTRIB = PRIVATE
                       (pages only it uses) + SHARED (its share of
                       pages others use too) + KERNEL (page tables,
                       stacks, objects it causes); jobs sum their
                       processes; then a summary of the whole system
                       (memory no process is blamed for, by kind)
                       that adds up to the total physical memory
"""


class PsOptions(NamedTuple):
    threads: bool = False
    jobs_only: bool = False
    job_koid: int | None = None
    units: str = ""
    json: bool = False
    swap: bool = False
    attribution: str = "2017"


class _PsWording(Wording):
    """ps.c's: ``Unknown option: <arg>`` for anything it does not know, operands too."""

    def unknown_short(self, tool: str, letter: str, token: str) -> str:
        return f"Unknown option: -{safe_text(letter)}"

    def unknown_long(self, tool: str, token: str) -> str:
        return f"Unknown option: {safe_text(token)}"

    def operands(self, tool: str, operands: Sequence[str], spec: str) -> str:
        return f"Unknown option: {safe_text(operands[0])}"


GRAMMAR = Grammar(
    "ps",
    HELP,
    (
        Opt("threads", "T"),
        Opt("jobs_only", "J"),
        Opt("job", long="job", value=True),
        UNITS_OPT,
        Opt("json", long="json"),
        Opt("swap", long="swap"),
        ATTRIBUTION_OPT,
    ),
    after_error="help",
    wording=_PsWording(),
)


def parse_args(args: Sequence[str], out: TextIO, err: TextIO) -> PsOptions | int:
    """The options, or the exit code when ps is done (help or a usage error)."""
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    flags, values = parsed.flags, parsed.values
    job = values.get("job")
    job_koid = None if job is None else strtoull(job)
    if job is not None and job_koid is None:
        return bad_value("ps", "--job", job, "a job koid (a number)", err)
    return PsOptions(
        threads="threads" in flags,
        jobs_only="jobs_only" in flags,
        job_koid=job_koid,
        units=values.get("units", ""),
        json="json" in flags,
        swap="swap" in flags,
        attribution=values.get("attribution", "2017"),
    )


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    opts = parse_args(args, out, err)
    if isinstance(opts, int):
        return opts
    snapshot = source.snapshot(level_for(opts.attribution, Level.TASKS))
    start = snapshot.root_job_koid if opts.job_koid is None else opts.job_koid
    if opts.job_koid is not None and opts.job_koid not in snapshot.jobs:
        err.write(f"ERROR: no job with koid {opts.job_koid}\n")
        return 1
    try:
        figs = figures(snapshot, rule_for(snapshot, opts.attribution))
    except NoPageFacts:
        err.write(f"ps: {safe_text(no_page_facts(source.name))}\n")
        return 1
    rows = ps_rows(snapshot, figs, start, threads=opts.threads, jobs_only=opts.jobs_only)
    system = figs.system
    if opts.json:
        columns = ps_columns(figs, swap=opts.swap, json=True)
        write_json(ps_json(rows, columns, system=system, job_koid=start), out)
    else:
        # The table may show one job; an exact summary always adds up the whole system.
        scope = "" if opts.job_koid is None else f"not only job {opts.job_koid}"
        columns = ps_columns(figs, swap=opts.swap)
        write_ps(
            rows, columns, out, units=opts.units, threads=opts.threads, system=system, scope=scope
        )
    shown = opts.json or (system is not None and system.has_residual)
    notes = figures_notes(snapshot.notes, system, shown_in_output=shown)
    job = figs.jobs.get(start) if start is not None else None
    if job is not None and job.swap and not (opts.swap or opts.json):
        # The JSON rows carry the swap figures; the table has no column for them.
        if system is None:
            notes.append(
                f"{format_size(job.swap)} of the processes' memory is swapped out (SwapPss)"
                " and not in PSS; --swap includes it"
            )
        else:
            notes.append(
                f"{format_size(job.swap)} of the processes' memory is swapped out"
                " (their share of it) and not RAM, so not in ATTRIB; --swap shows it"
            )
    unknown = 0 if job is None else job.unknown
    if unknown:
        # The "?" rows say it for each process; the job rows above them cannot.
        plural = "es" if unknown != 1 else ""
        notes.append(
            f"the sizes of {unknown} process{plural} are unknown (shown as ?);"
            " job totals leave them out"
        )
    print_notes("ps", notes, err)
    return 0


TOOL = Tool("ps", "jobs, processes and threads with their PSS/PRIVATE/SHARED memory", run)
