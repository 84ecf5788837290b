"""The pipeline only flows downward: model <- sources <- accounting <- render <- cli.

Sources never import renderers; renderers never read the OS. Checked on the import graph
and the calls of every module, so a violation fails here rather than in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paths import SRC

PACKAGE = SRC / "mxmem"

# What each layer may import from inside mxmem (beyond itself).
ALLOWED = {
    "model": {"mxmem.model"},
    "sources": {"mxmem.model", "mxmem.sources", "mxmem.errors", "mxmem.sizes"},
    "accounting": {"mxmem.model", "mxmem.accounting", "mxmem.errors"},
    "render": {"mxmem.model", "mxmem.accounting", "mxmem.render", "mxmem.errors", "mxmem.sizes"},
}
# Modules through which code reads or changes the OS; renderers get a stream instead.
OS_MODULES = {"os", "pathlib", "subprocess", "socket", "glob", "shutil", "io", "resource", "ctypes"}


def _layer_modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _allowed(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_downward(layer: str) -> None:
    modules = _layer_modules(layer)
    assert modules, f"no modules in layer {layer}"
    bad = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules
        for name in _imports(path)
        if name.split(".")[0] == "mxmem" and not _allowed(name, ALLOWED[layer])
    ]
    assert bad == []


def test_sources_never_import_renderers() -> None:
    bad = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _layer_modules("sources")
        for name in _imports(path)
        if _allowed(name, {"mxmem.render", "mxmem.cli"})
    ]
    assert bad == []


def test_renderers_never_read_the_os() -> None:
    bad: list[str] = []
    for path in _layer_modules("render"):
        for name in _imports(path):
            if name.split(".")[0] in OS_MODULES or _allowed(name, {"mxmem.sources"}):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"open", "input", "__import__"}
            ):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} calls {node.func.id}()")
    assert bad == []


def test_layering_check_catches_a_violation(tmp_path: Path) -> None:
    # The checker itself must be able to fail: an upward import is reported.
    bad_module = tmp_path / "bad.py"
    bad_module.write_text("from mxmem.render.units import format_size\nimport os\n")
    names = _imports(bad_module)
    assert not all(_allowed(n, ALLOWED["sources"]) for n in names if n.startswith("mxmem"))
    assert "os" in names
