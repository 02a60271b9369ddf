"""Experiment and benchmark scripts use gdsynth's public API only (STYLE.md, habit 13), read from
their source with :mod:`ast` (nothing is imported or run):

* no private name of gdsynth: ``from gdsynth.x import _y``, ``import gdsynth.x._y``,
  ``from gdsynth.x._y import z``, nor ``obj._y`` on a gdsynth module or on any object that is not
  the script's own (``self``/``cls``) or a third-party module (``torch._dynamo`` is torch's
  business);
* no patching of the package: no ``unittest.mock`` (``mock.patch``, ``patch.object``), no
  ``setattr``/``delattr`` on a gdsynth name, no assignment to an attribute of a gdsynth module;
* no sibling script loaded by path (``importlib.util.spec_from_file_location``);
* no write to this process's environment (``os.environ[...] = ``, ``os.environ.update``,
  ``os.putenv``): settings are passed explicitly, or in a child process's ``env``.

And test modules never import a ``conftest`` (fixtures come from pytest's discovery; shared
helpers from :mod:`tests.fixtures`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*(REPO / "experiments").glob("*.py"), *(REPO / "benchmarks").glob("*.py")])
OWN = {"self", "cls"}
ENV_WRITES = {f"{m}.{f}" for m in ("os.environ", "environ")
              for f in ("update", "setdefault", "pop", "clear")} | {"os.putenv", "putenv"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root(node: ast.expr) -> str | None:
    """The name an attribute chain starts from (``a`` of ``a.b.c``), None for other bases."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _bindings(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names bound to gdsynth imports, names bound to other imports) anywhere in the module."""
    ours, theirs = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]
                (ours if a.name.split(".")[0] == "gdsynth" else theirs).add(bound)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                bound = a.asname or a.name
                (ours if node.module.split(".")[0] == "gdsynth" else theirs).add(bound)
    return ours, theirs - ours


def violations(source: str) -> list[str]:
    """One line per use of a private gdsynth name, patch of the package or script loaded by path."""
    tree = ast.parse(source)
    ours, theirs = _bindings(tree)
    found: list[str] = []

    def add(node: ast.AST, what: str) -> None:
        found.append(f"line {node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "gdsynth" and any(_private(p) for p in parts):
                    add(node, f"import of private module {a.name}")
                if a.name.startswith("unittest.mock") or a.name == "mock":
                    add(node, f"import {a.name} (patching)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "gdsynth":
                if any(_private(p) for p in parts):
                    add(node, f"import from private module {node.module}")
                for a in node.names:
                    if _private(a.name):
                        add(node, f"import of private name {node.module}.{a.name}")
            if node.module in ("unittest", "unittest.mock", "mock"):
                add(node, f"import from {node.module} (patching)")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            root = _root(node.value)
            if root not in OWN and root not in theirs:
                add(node, f"private attribute {ast.unparse(node)}")
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func in ("setattr", "delattr") and node.args and _root(node.args[0]) in ours:
                add(node, f"{func} on gdsynth name {ast.unparse(node.args[0])}")
            if func.endswith("spec_from_file_location"):
                add(node, "script loaded by path (spec_from_file_location)")
            if {"patch", "monkeypatch"} & set(func.split(".")):
                add(node, f"patching call {func}")
            if func in ENV_WRITES:
                add(node, f"global environment write {func}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, ast.Attribute) and _root(t) in ours:
                    add(node, f"assignment to gdsynth attribute {ast.unparse(t)}")
                if isinstance(t, ast.Subscript) and ast.unparse(t.value) in ("os.environ", "environ"):
                    add(node, f"global environment write {ast.unparse(t)}")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_uses_public_api_only(script: Path) -> None:
    assert violations(script.read_text(encoding="utf-8")) == []


def test_every_script_folder_is_checked() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in SCRIPTS}
    assert {"experiments/phantom_results.py", "benchmarks/run.py"} <= names


@pytest.mark.parametrize("source, expected", [
    ("from gdsynth.inference.prep import _helper", "private name"),
    ("from gdsynth.cli._common import CaseResult", "private module"),
    ("import gdsynth.cli._common", "private module"),
    ("from gdsynth.inference import prep\nprep._cache", "private attribute"),
    ("def f(module):\n    return module._layout(1)", "private attribute"),
    ("from unittest import mock", "patching"),
    ("import unittest.mock", "patching"),
    ("import x\nx.mock.patch.object(a, 'b', c)", "patching call"),
    ("from gdsynth.inference import prep\nsetattr(prep, 'prepare_exam', None)", "setattr"),
    ("from gdsynth.inference import prep\nprep.prepare_exam = None", "assignment"),
    ("import importlib.util\nimportlib.util.spec_from_file_location('m', 'x.py')", "by path"),
    ("import os\nos.environ['TORCHINDUCTOR_CACHE_DIR'] = '/tmp/x'", "environment"),
    ("import os\nos.environ.update(A='1')", "environment"),
])
def test_checker_catches(source: str, expected: str) -> None:
    found = violations(source)
    assert found and any(expected in line for line in found), found


@pytest.mark.parametrize("source", [
    "from gdsynth.io import read_image\nread_image('x')",
    "class T:\n    def f(self):\n        return self._wall0",
    "import torch\ntorch._dynamo.reset()",
    "from gdsynth import __version__",
    "import argparse\nargs = argparse.Namespace()\nsetattr(args, 'x', 1)",
    "import os\nenv = {**os.environ, 'A': '1'}\nos.environ.get('A')",
])
def test_checker_allows(source: str) -> None:
    assert violations(source) == []


def test_no_test_imports_a_conftest() -> None:
    """Fixtures reach tests through pytest's conftest discovery; helpers through tests.fixtures."""
    bad = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                    if "conftest" in n.split(".")]
    assert bad == []
