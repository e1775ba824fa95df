"""The package tree is the pipeline: each stage imports only the stages before it.

The order is docs/architecture.md's "Stages:" line, read here, so the document and the code cannot
drift apart: a module importing a later stage (at any depth of the file, lazy imports included)
fails, and so does a package or top-level module of ``avloc`` that the line does not place.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_independent  # no Keras: one backend runs it (conftest.py)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avloc"


def stages() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("Stages:"))
    return re.findall(r"`(\w+)`", line)


def stage_of(module: str) -> str | None:
    """``avloc.X[.…]`` -> ``X`` (None for avloc itself and for other packages)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "avloc" and len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    """Every ``avloc.*`` module ``path`` imports (with the line), at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "avloc":  # from avloc import runtime, __version__
                found += [(node.lineno, f"avloc.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if stage_of(name) not in (None, "__version__")]


def test_every_package_has_a_stage():
    order = stages()
    assert len(order) == len(set(order)), "a stage is listed twice"
    present = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" and p.stem != "__init__"}
    present |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(present - set(order)) == [], "place these in docs/architecture.md's Stages line"
    assert sorted(set(order) - present) == [], "the Stages line names what no longer exists"


def test_no_stage_imports_a_later_one():
    rank = {name: i for i, name in enumerate(stages())}
    later = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for line, module in imports(path):
            target = stage_of(module)
            if rank[target] > rank[own]:
                later.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {module}")
    assert later == []


def test_the_check_sees_a_late_import(tmp_path):
    """The parser finds lazy imports too (a check that cannot fail would prove nothing)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from avloc.jobs.train import train\n    import avloc.maps\n")
    assert [stage_of(name) for _, name in imports(module)] == ["jobs", "maps"]


def test_the_command_line_installs_under_its_own_import_name():
    """``cli/`` is the package ``avloc_cli`` (no top-level ``cli`` to clash with), the ``avloc``
    script runs it, and every folder of avloc with Python files is a regular package."""
    import importlib.util
    from importlib.metadata import entry_points

    spec = importlib.util.find_spec("avloc_cli")
    assert spec is not None and Path(spec.origin).parent == ROOT / "cli"
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["avloc"] == "avloc_cli.main:main"
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").is_file()) == []
