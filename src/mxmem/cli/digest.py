"""``mxmem digest --buckets FILE [--output human|csv|json]``: memory by named bucket,
as Fuchsia's ``mem --digest`` and ``scripts/memory`` digests (spec §11.4; the rule is in
:mod:`mxmem.accounting.digest`). Works on every source: a capture names each process's
VMOs; elsewhere they are the VMOs of its handles and mappings.

``--attribution=exact`` (issue 6) sizes buckets by exact attribution instead of
committed bytes (the rule: :func:`mxmem.accounting.digest.exact_digest`): the snapshot is
taken at ``Level.PAGES``, and the rows add up to the total physical memory.

Usage errors and a bad bucket file print one line and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mxmem.accounting.digest import (
    EXIT_BAD_BUCKETS,
    BucketRule,
    bucket_rules,
    digest,
    exact_digest,
)
from mxmem.accounting.figures import NoPageFacts, figures, level_for, no_page_facts
from mxmem.cli.common import Tool, print_notes
from mxmem.cli.options import ATTRIBUTION_OPT, Grammar, Opt, parse, usage_error
from mxmem.errors import UsageError
from mxmem.model import Level
from mxmem.render.digest import write_digest_csv, write_digest_human, write_digest_json
from mxmem.render.exact import figures_notes
from mxmem.render.text import safe_text
from mxmem.sources import Source

HELP = """\
Usage: digest --buckets FILE [--output human|csv|json] [--attribution=2017]
       digest --attribution=exact [--buckets FILE] [--output human|csv|json]
Group memory into named buckets, as Fuchsia's memory digest does.
 --buckets FILE   a JSON array of {"name", "process", "vmo"} buckets; process and
                  vmo are regular expressions matched against whole names (a list
                  of them matches if any does; a missing one matches everything)
 --output FORMAT  human (default; sizes as %.4g B/KiB/MiB/GiB), csv or json
                  (exact bytes)
Each VMO goes to the first bucket (in file order) that matches it through any
process referencing it. Buckets are sorted by size, largest first (ties keep
file order), then come Undigested (VMOs no bucket claimed, but the kernel's
own), Orphaned (the kernel's VMO total minus those VMOs' committed bytes),
Kernel (wired + heap + mmu + ipc + other), Free and, where the kernel's figures
leave part of the total, Residual. The table ends with the Total the rows add
up to, then each process's undigested memory (name[koid]), largest first.
 --attribution=exact
                  size each VMO by its exact attributed bytes (every page
                  once), then Undigested (the rest of the processes' VMO
                  memory), Kernel (processes) (page tables, stacks and
                  objects they cause), memory no process is blamed for by
                  kind (largest first, Free last) and, if the attribution
                  does not add up, Residual; the rows add up to the total
                  physical memory. --buckets is optional here.
"""

_OUTPUTS = ("human", "csv", "json")


def _load_rules(path: str) -> tuple[BucketRule, ...]:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}", EXIT_BAD_BUCKETS) from e
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not JSON: {e}", EXIT_BAD_BUCKETS) from e
    return bucket_rules(data, path)


GRAMMAR = Grammar(
    "digest",
    HELP,
    (
        Opt("buckets", long="buckets", value=True),
        Opt("output", long="output", value=True, choices=_OUTPUTS),
        ATTRIBUTION_OPT,
    ),
)


def run(args: Sequence[str], source: Source, out: TextIO, err: TextIO) -> int:
    parsed = parse(GRAMMAR, args, out, err)
    if isinstance(parsed, int):
        return parsed
    buckets = parsed.values.get("buckets")
    output = parsed.values.get("output", "human")
    attribution = parsed.values.get("attribution", "2017")
    if buckets is None and attribution != "exact":
        return usage_error(GRAMMAR, "digest: --buckets FILE is required", err)
    try:
        rules = () if buckets is None else _load_rules(buckets)
    except UsageError as e:
        err.write(f"digest: {safe_text(str(e))}\n")
        return e.exit_code
    snapshot = source.snapshot(level_for(attribution, Level.FULL))
    if attribution == "exact":
        try:
            figs = figures(snapshot, "exact")
        except NoPageFacts:
            err.write(f"digest: {safe_text(no_page_facts(source.name))}\n")
            return 1
        result = exact_digest(snapshot, rules, figs)
    else:
        result = digest(snapshot, rules)
    if output == "json":
        write_digest_json(result, out)
    elif output == "csv":
        write_digest_csv(result, out)
    else:
        write_digest_human(result, out)
    # The JSON carries the notes; the table and CSV have no place for them.
    system = figs.system if attribution == "exact" else None
    notes = figures_notes(snapshot.notes, system, shown_in_output=output == "json")
    print_notes("digest", (*notes, *(() if system else result.notes)), err)
    return 0


TOOL = Tool("digest", "memory grouped into named buckets, as Fuchsia's digest", run)
