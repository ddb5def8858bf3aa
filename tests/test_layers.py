"""Imports go downwards only: the layer picture of docs/architecture.md, checked on the source.

Every ``import``/``from ... import`` of ``brainsegfounder`` (those inside functions included) is read
with :mod:`ast`; a module may import its own layer and the layers below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "brainsegfounder"
COMMANDS = ("fit", "predict", "evaluate", "calibrate", "robustness", "export", "demo", "lowlabel", "preprocess")

#: Bottom to top, as drawn in docs/architecture.md. A module belongs to the longest prefix listed.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("brainsegfounder.utils",)),
    ("data", ("brainsegfounder.data",)),
    ("clinical", ("brainsegfounder.clinical",)),
    ("checkpoint contract", ("brainsegfounder.checkpoints",)),
    ("models and scoring", ("brainsegfounder.models", "brainsegfounder.metrics", "brainsegfounder.evaluation")),
    ("tasks", ("brainsegfounder.tasks",)),
    ("inference", ("brainsegfounder.inference",)),
    ("report", ("brainsegfounder.report",)),
    ("training", ("brainsegfounder.training",)),
    ("commands", ("brainsegfounder.__main__", "brainsegfounder.report.__main__",
                  *(f"brainsegfounder.{c}" for c in COMMANDS))),
]


def layer_of(module: str) -> int | None:
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {n for n in names if n.startswith("brainsegfounder.")}


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        if own is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target in sorted(imported(tree, module, path.name == "__init__.py")):
            rank = layer_of(target)
            if rank is not None and rank > own:
                found.append(f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[rank][0]})")
    return found


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py")
                if module_name(p) != "brainsegfounder" and layer_of(module_name(p)) is None]
    assert unplaced == [], f"put these modules in a layer of tests/test_layers.py and docs/architecture.md: {unplaced}"


def test_no_layer_imports_a_higher_one():
    assert violations() == []


def test_the_check_sees_an_upward_import():
    """The check is not vacuous: a task importing the predictor is caught (a lazy import too)."""
    source = "def f():\n    from brainsegfounder.inference.predictor import Predictor\n"
    names = imported(ast.parse(source), "brainsegfounder.tasks.x", False)
    assert names == {"brainsegfounder.inference.predictor", "brainsegfounder.inference.predictor.Predictor"}
    assert layer_of("brainsegfounder.inference.predictor") > layer_of("brainsegfounder.tasks.x")


@pytest.mark.parametrize("command", COMMANDS)
def test_the_package_root_holds_the_commands(command):
    assert (PACKAGE / f"{command}.py").is_file()


def test_the_root_holds_only_commands_and_at_most_two_others():
    others = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in (*COMMANDS, "__init__"))
    assert len(others) <= 2, others
