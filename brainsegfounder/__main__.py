"""What you can run: ``python -m brainsegfounder`` lists the commands.

Each command is ``python -m brainsegfounder.<command>`` and, once the package is installed, the
script ``bsf-<command>`` (``[project.scripts]`` in pyproject.toml points at the functions below);
every one answers ``--help``.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "listing", "main"]  # and one function per command (see below)

#: command -> what it does (the modules at the package root, and the report package).
COMMANDS = {
    "fit": "train any task (SSL stages, fine-tuning) from one YAML file",
    "predict": "segment new scans with trained checkpoints (NIfTI or a DICOM study in)",
    "preprocess": "prepare raw studies (DICOM or NIfTI series, skull on) as the model was trained",
    "evaluate": "score predictions against references as the challenges do",
    "report": "one offline HTML page of a predictions folder",
    "calibrate": "per-region temperatures and a flag threshold on the validation fold",
    "robustness": "Dice per region for every subset of a model's modalities",
    "export": "ONNX, TorchScript or a MONAI Bundle of a checkpoint",
    "demo": "the CPU demo: synthetic data, Stage 1 -> Stage 2 -> fine-tuning",
    "lowlabel": "low-label fine-tuning study: from scratch vs from pretrained",
}


def listing() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = ["brainsegfounder commands (python -m brainsegfounder.<command> --help):"]
    lines += [f"  {name:<{width}} {text}   (bsf-{name})" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def _run(name: str) -> int:
    """Run a command as ``python -m brainsegfounder.<name>`` would; its exit status (0 unless it says)."""
    if name == "fit":  # --help before torch is imported, as `python -m brainsegfounder.fit --help`
        from brainsegfounder.training.fast_help import help_requested, print_help

        if help_requested(sys.argv[1:]):
            return print_help(sys.argv[1:]) or 0
    module = importlib.import_module("brainsegfounder.report.__main__" if name == "report" else f"brainsegfounder.{name}")
    result = module.main()
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _script(name: str):
    def run() -> int:
        return _run(name)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"The ``bsf-{name}`` script: ``python -m brainsegfounder.{name}``."
    return run


# fit, predict, evaluate, ...: the functions [project.scripts] names, one per command.
globals().update({name: _script(name) for name in COMMANDS})


def main() -> int:
    print(listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
