"""The README's Python example runs as written, and its commands name real tools."""

from __future__ import annotations

import re

from paths import REPO

README = REPO / "README.md"


def test_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_first_two_commands_install_run_and_test() -> None:
    first = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first[0].startswith("python3 -m pip install . && mxmem ps")
    assert first[1].startswith("python3 -m pip install -e '.[test]' && python3 -m pytest")
    ci = (REPO / ".ci" / "run").read_text()
    # CI runs the README's test command, verbatim.
    assert first[1].split("#")[0].strip() in ci
