"""The house rules that keep gdsynth easy to change, read from the source (docs/architecture.md):

* no module imports a higher layer of the stack (``LAYERS``, lowest first);
* no two public top-level definitions of the package share a name;
* no function is longer than 80 lines.

These read source text only (``ast``), so they run in well under a second.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gdsynth"

# Lowest first, as in docs/architecture.md. A module may import its own layer or lower ones.
# errors, progress, runtime and batch are the foundation every layer may import.
LAYERS = ["errors", "progress", "runtime", "batch", "io", "metrics", "phantom", "preprocess", "models", "data",
          "evaluation", "detection", "inference", "training", "explain", "review", "demo", "cli"]
MAX_FUNCTION_LINES = 80


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out.append((name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    return out


MODULES = _modules()


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "gdsynth" or len(parts) < 2 or parts[1] == "__init__":
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"gdsynth.{parts[1]} has no layer: add it to LAYERS here and to "
                             "docs/architecture.md")
    return LAYERS.index(parts[1])


def _is_module(name: str) -> bool:
    return (PACKAGE / name / "__init__.py").exists() or (PACKAGE / f"{name}.py").exists()


def _imported(tree: ast.Module) -> list[tuple[int, str]]:
    """Every absolute gdsynth import of a module (also those inside functions), with its line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"gdsynth.{a.name}") for a in node.names
                      if node.module == "gdsynth" and _is_module(a.name)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"line {node.lineno}: relative import; gdsynth imports absolutely")
    return [(line, mod) for line, mod in found if mod.startswith("gdsynth.")]


def test_the_stack_is_complete():
    packages = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py")}
    packages.discard("__init__")
    assert sorted(packages - set(LAYERS)) == []


@pytest.mark.parametrize("module,tree", MODULES, ids=[m for m, _ in MODULES])
def test_no_import_up_the_stack(module, tree):
    me = _layer(module)
    if me is None:
        return
    up = [f"line {line}: {module} imports {other} ({LAYERS[_layer(other)]} is above "
          f"{LAYERS[me]})" for line, other in _imported(tree)
          if (_layer(other) or 0) > me]
    assert up == []


def test_public_names_are_defined_once():
    where = defaultdict(list)
    for module, tree in MODULES:
        for node in tree.body:
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and not node.name.startswith("_")):
                where[node.name].append(module)
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert twice == {}, "one name, one meaning: rename or merge these definitions"


def test_no_function_over_80_lines():
    long = [f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for module, tree in MODULES for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_the_checks_see_a_violation(tmp_path):
    """The import reader finds imports inside functions and `from gdsynth import x` forms."""
    tree = ast.parse("def f():\n    from gdsynth.cli.main import app\n"
                     "from gdsynth import review, __version__\n")
    assert sorted(m for _, m in _imported(tree)) == ["gdsynth.cli.main", "gdsynth.review"]
    assert _layer("gdsynth.cli.main") > _layer("gdsynth.io.image")
