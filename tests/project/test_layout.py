"""The package's stages import one way: cli -> web, desktop -> insight -> training, reading -> model -> data
-> core.

Every `from numbre.X import` and `import numbre.X` in src/numbre, lazy ones inside functions
included, is read with `ast`; an import that runs up this order, or sideways between training and
reading, or any circle between modules, fails here with the file and the import that causes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "numbre"

# Higher rank may import lower rank (and its own stage); never the other way.
# The command line starts the web server and the desktop window, so it sits above them.
RANKS = {"core": 0, "data": 1, "model": 2, "reading": 3, "training": 3, "insight": 4,
         "web": 5, "desktop": 5, "batch": 5, "cli": 6}
CORE = {"errors", "atomic", "parallel", "text", "pretrained"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    """The stage a module belongs to: its first package below numbre, or core."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in CORE or parts[1] == "__main__":
        return "core" if len(parts) >= 2 and parts[1] in CORE else "top"
    return parts[1]


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported numbre module, line) for every import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("numbre"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                known = (SOURCE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    SOURCE.parent / candidate.replace(".", "/") / "__init__.py").exists()
                found.append((candidate if known else node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("numbre")]
    return found


def graph() -> dict[str, list[tuple[str, int]]]:
    return {module_name(path): imports(path) for path in SOURCE.rglob("*.py")}


def test_no_import_runs_up_or_sideways_between_stages():
    wrong = []
    for module, targets in graph().items():
        source = stage(module)
        if source == "top":  # numbre/__init__.py and __main__.py face the user: they may name any stage
            continue
        for target, line in targets:
            destination = stage(target)
            if destination in ("top", source):
                continue
            if RANKS[destination] >= RANKS[source]:
                wrong.append(f"{module}:{line} imports {target} ({source} must not import {destination})")
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def test_no_import_circles():
    edges = {module: {target for target, _ in targets if target != module}
             for module, targets in graph().items()}
    # a package's __init__ re-exporting its own modules is not a circle of stages
    for module in edges:
        edges[module] = {target for target in edges[module] if not module.startswith(target + ".")}
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("stage_name", sorted(set(RANKS) - {"core"}))
def test_every_stage_says_what_it_holds_and_may_import(stage_name):
    docstring = ast.get_docstring(ast.parse((SOURCE / stage_name / "__init__.py").read_text()))
    assert docstring and "import" in docstring, f"numbre/{stage_name}/__init__.py must say what it may import"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a reading module importing training is reported."""
    fake = tmp_path / "numbre"
    (fake / "reading").mkdir(parents=True)
    (fake / "training").mkdir()
    (fake / "reading" / "x.py").write_text("def f():\n    from numbre.training.loop import Trainer\n")
    (fake / "training" / "loop.py").write_text("from numbre.reading.x import f\n")
    monkeypatch.setattr(__import__(__name__), "SOURCE", fake)
    with pytest.raises(AssertionError, match=r"reading must not import training"):
        test_no_import_runs_up_or_sideways_between_stages()
    with pytest.raises(AssertionError, match="import circles"):
        test_no_import_circles()
