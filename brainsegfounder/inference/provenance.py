"""What made a prediction: package versions and provenance.json (checkpoints, preprocessing, command, inputs, date)."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from brainsegfounder.data.layouts import CaseFiles

__all__ = ["PROVENANCE_FILE", "file_sha256", "inputs_digest", "package_versions", "write_provenance"]

PROVENANCE_FILE = "provenance.json"


#: Packages whose versions ``provenance.json`` records.
_VERSIONS = ("brainsegfounder", "torch", "monai", "torchio", "pytorch-lightning", "nibabel", "nilearn", "numpy")


def package_versions() -> dict[str, str]:
    """``{"python": ..., package: version}`` of the packages a prediction depends on (those installed)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def write_provenance(output: Path, checkpoints: Sequence[str | Path], preprocessing: dict | None, command: str,
                     inputs: Sequence[str | Path]) -> Path:
    """``<output>/provenance.json``: checkpoints, preprocessing record, command line, inputs, versions, date."""
    record = {"checkpoints": [str(Path(c).resolve()) for c in checkpoints], "preprocessing": preprocessing,
              "command": command, "inputs": [str(Path(p).resolve()) for p in inputs], "versions": package_versions(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = Path(output) / PROVENANCE_FILE
    path.write_text(json.dumps(record, indent=2))
    return path



def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_digest(case: CaseFiles) -> str:
    """One sha256 over a case's input files (modality names and contents), to tell when they changed."""
    return hashlib.sha256(json.dumps({m: file_sha256(p) for m, p in case.images.items()}).encode()).hexdigest()


