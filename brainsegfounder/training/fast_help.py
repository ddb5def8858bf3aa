"""``python -m brainsegfounder.fit --help`` at once: options read from source, no torch import.

LightningCLI builds its help from the imported classes, so it needs torch and Lightning (seconds
idle, close to a minute on a loaded machine) just to print text. This module prints the options
of the config's model and data classes from their source files with :mod:`ast` (the ``__init__``
signature and the docstring's ``Args:``), the common trainer options, and how to reach
LightningCLI's complete help (``--help full``). Nothing here runs training code.

Example:
    >>> help_requested(["--config", "x.yaml", "--help"]), help_requested(["--help", "full"])
    (True, False)
    >>> options = class_options("brainsegfounder.tasks.segmentation.SegmentationModule")
    >>> next(o for o in options if o.name == "lr")
    Option(name='lr', annotation='float', default='0.0001', doc='peak AdamW learning rate.')
    >>> any(o.name == "backbone.feature_size" for o in options)  # a dataclass argument, expanded
    True
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["Option", "class_options", "help_requested", "help_text", "print_help"]

PROG = "python -m brainsegfounder.fit"
DEFAULT_MODEL = "brainsegfounder.tasks.segmentation.SegmentationModule"
DEFAULT_DATA = "brainsegfounder.data.datamodule.SegmentationDataModule"
TASKS = {
    "brainsegfounder.tasks.segmentation.SegmentationModule": "segmentation fine-tuning",
    "brainsegfounder.tasks.ssl.SSLPretrainModule": "Stage 1 SSL pretraining",
    "brainsegfounder.tasks.ssl.DiseaseAwarePretrainModule": "Stage 2 disease-aware SSL",
    "brainsegfounder.data.datamodule.SegmentationDataModule": "labelled cases (fine-tuning)",
    "brainsegfounder.data.unlabelled.UnlabelledDataModule": "images only (SSL)",
}
#: model arguments that fit takes from the data module (``link_arguments``); a config leaves them out.
LINKED = {"modalities", "in_channels", "regions", "roi_size"}
#: (option, what it does): the Trainer options the configs use; ``--help full`` lists all of them.
TRAINER = (
    ("max_steps", "optimiser steps to train (the configs count steps, not epochs)"),
    ("val_check_interval", "validate every this many steps (with check_val_every_n_epoch: null)"),
    ("accelerator", "cpu, gpu, auto"),
    ("devices", "devices per node (e.g. 4; with strategy ddp)"),
    ("num_nodes", "machines (SLURM or torchrun)"),
    ("strategy", "auto, ddp, ..."),
    ("precision", "32-true, bf16-mixed, 16-mixed"),
    ("accumulate_grad_batches", "batches per optimiser step"),
    ("gradient_clip_val", "clip gradients to this norm"),
    ("limit_val_batches", "validation volumes per validation (0: none)"),
    ("num_sanity_val_steps", "validation batches before training starts"),
    ("log_every_n_steps", "logging interval in steps"),
    ("default_root_dir", "folder of checkpoints and logs"),
    ("logger", "CSVLogger, WandbLogger, TensorBoardLogger (class_path + init_args)"),
    ("callbacks", "a list of callbacks (class_path + init_args)"),
)


class Option(NamedTuple):
    name: str
    annotation: str
    default: str
    doc: str


def help_requested(argv: Sequence[str]) -> bool:
    """True for ``-h``/``--help`` anywhere in ``argv``, except ``--help full`` (LightningCLI's own)."""
    for i, arg in enumerate(argv):
        if arg in ("-h", "--help"):
            return not (i + 1 < len(argv) and argv[i + 1] == "full")
    return False


def _docstring_args(doc: str | None) -> dict[str, str]:
    """``{name: text}`` from a Google-style ``Args:`` section (``a, b: text`` documents both)."""
    lines = textwrap.dedent("\n".join((doc or "").splitlines()[1:])).splitlines()
    found: dict[str, str] = {}
    inside, names, indent = False, [], 0
    for line in lines:
        if line.strip() == "Args:":
            inside, indent = True, -1
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent < 0:
            indent = depth
        if depth < indent:
            break
        match = re.match(r"^([\w, ]+):\s*(.*)$", line.strip()) if depth == indent else None
        if match:
            names = [n.strip() for n in match[1].split(",")]
            for name in names:
                found[name] = match[2]
        else:
            for name in names:
                found[name] += " " + line.strip()
    return found


def _source_file(module: str) -> Path | None:
    """The ``.py`` file of ``module`` without importing it or its packages.

    ``importlib.util.find_spec("a.b.c")`` imports ``a`` and ``a.b`` (``brainsegfounder.models``
    imports MONAI); only the top-level package is looked up here, the rest is a folder walk.
    """
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin)
    if not rest:
        return path if path.suffix == ".py" else None
    base = path.parent.joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_tree(module: str) -> tuple[ast.Module, Path] | None:
    path = _source_file(module)
    if path is None:
        return None
    return ast.parse(path.read_text(encoding="utf-8")), path


def _find_class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _imported_from(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
            return f"{node.module}.{name}"
    return None


def _dataclass_fields(class_path: str) -> list[Option]:
    module, _, name = class_path.rpartition(".")
    if not module.startswith("brainsegfounder."):
        return []
    found = _module_tree(module)
    node = _find_class(found[0], name) if found else None
    if node is None or not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
        return []
    docs = _docstring_args(ast.get_docstring(node, clean=False))
    return [Option(f.target.id, ast.unparse(f.annotation), ast.unparse(f.value) if f.value else "",
                   docs.get(f.target.id, ""))
            for f in node.body if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)]


def class_options(class_path: str) -> list[Option]:
    """The ``__init__`` options of ``class_path`` (a ``brainsegfounder`` class), read from its source.

    An argument typed by a dataclass of the package (``backbone: Backbone``) is listed field by
    field (``backbone.preset``...). A class whose ``__init__`` only forwards ``*args, **kwargs``
    shows its base class's options. Returns ``[]`` for a class it cannot read (use ``--help full``).
    """
    module, _, name = class_path.rpartition(".")
    found = _module_tree(module) if module else None
    if found is None:
        return []
    tree = found[0]
    node = _find_class(tree, name)
    while node is not None:
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is not None and (init.args.args[1:] or init.args.kwonlyargs):
            break
        base = node.bases[0] if node.bases else None
        node = _find_class(tree, base.id) if isinstance(base, ast.Name) else None
    if node is None or init is None:
        return []
    docs = {**_docstring_args(ast.get_docstring(node, clean=False)),
            **_docstring_args(ast.get_docstring(init, clean=False))}
    args = init.args.args[1:]
    defaults = [None] * (len(args) - len(init.args.defaults)) + list(init.args.defaults)
    options = []
    for arg, default in zip(args, defaults, strict=True):
        annotation = ast.unparse(arg.annotation) if arg.annotation else ""
        doc = docs.get(arg.arg, "")
        if arg.arg in LINKED:
            doc = f"(set by fit from the data module) {doc}"
        options.append(Option(arg.arg, annotation, ast.unparse(default) if default else "", doc))
        target = _imported_from(tree, annotation) if annotation.isidentifier() else None
        for sub in _dataclass_fields(target or f"{module}.{annotation}"):
            options.append(sub._replace(name=f"{arg.arg}.{sub.name}"))
    return options


def _config_classes(argv: Sequence[str]) -> tuple[list[str], dict, dict]:
    """The config files named in ``argv``, and the model/data class paths and init_args they set."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    configs += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    model: dict = {"class_path": DEFAULT_MODEL, "init_args": {}}
    data: dict = {"class_path": DEFAULT_DATA, "init_args": {}}
    for path in configs:
        try:
            import yaml

            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, ValueError) as err:
            print(f"(cannot read {path}: {err})", file=sys.stderr)
            continue
        for section, target in (("model", model), ("data", data)):
            entry = loaded.get(section) or {}
            if isinstance(entry, dict) and entry.get("class_path"):
                if entry["class_path"] != target["class_path"]:
                    target["init_args"] = {}
                target["class_path"] = entry["class_path"]
            target["init_args"].update((entry.get("init_args") or {}) if isinstance(entry, dict) else {})
    return configs, model, data


def _section(title: str, prefix: str, options: list[Option], given: dict) -> list[str]:
    lines = [title]
    expanded = {o.name.split(".")[0] for o in options if "." in o.name}
    for option in options:
        head, _, sub = option.name.partition(".")
        value = given.get(head)
        if sub:
            value = value.get(sub) if isinstance(value, dict) else None
        default = f" = {option.default}" if option.default else ""
        config = f"  [config: {value}]" if value is not None and option.name not in expanded else ""
        lines.append(f"  --{prefix}.{option.name}  {option.annotation}{default}{config}")
        if option.doc:
            lines += textwrap.wrap(option.doc, width=96, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return lines


def help_text(argv: Sequence[str] = ()) -> str:
    """The help for ``argv`` (its ``--config`` files choose the classes shown)."""
    configs, model, data = _config_classes(argv)
    lines = [
        f"usage: {PROG} --config FILE [--section.option=value ...]",
        "",
        "BrainSegFounder training: one YAML config (experiments/*.yaml) picks the task and its data;",
        "every option below can be set in it or on the command line (--model.lr=3e-4).",
        "",
        "  --config FILE           a YAML config; several merge left to right",
        "  --ckpt_path PATH|last   resume from a checkpoint, or the run folder's newest last.ckpt",
        "  --quiet true            no progress bar, model summary or info lines (batch logs)",
        "  --print_config          print the resolved config and exit",
        "  --help full             LightningCLI's complete help (imports torch: a few seconds)",
        "",
        "Tasks (model.class_path) and data (data.class_path):",
        *(f"  {path}  {what}" for path, what in TASKS.items()),
        "",
    ]
    if not configs:
        lines += ["No --config given: the options of the default fine-tuning classes follow.", ""]
    for section, entry in (("model", model), ("data", data)):
        options = class_options(entry["class_path"])
        title = f"{section} options ({entry['class_path']}):"
        if options:
            lines += _section(title, section, options, entry["init_args"])
        else:
            lines += [title, f"  (not readable from source: see {PROG} --config FILE --help full)"]
        lines.append("")
    lines.append("trainer options (the common ones; --help full lists every one):")
    lines += [f"  --trainer.{name:26s} {what}" for name, what in TRAINER]
    return "\n".join(lines) + "\n"


def print_help(argv: Sequence[str]) -> int:
    """Print :func:`help_text` for ``argv``; returns the exit status (0)."""
    sys.stdout.write(help_text(argv))
    return 0
