"""What predict checks before any case is predicted: every voxel read, NaN/Inf counted, backgrounds named, earlier outputs vouched for."""

from __future__ import annotations

from brainsegfounder.utils.errors import DataError

__all__ = ["check_existing", "check_inputs"]


def check_inputs(cases, predictor, non_finite: str, console) -> dict[str, int]:
    """Read every voxel of every case before any is predicted; returns NaN/Inf counts replaced by 0.

    A truncated file, NaN/Inf voxels (unless ``--non_finite zero``) or a constant modality stops the
    run here, naming the file, instead of a plausible but wrong segmentation later.
    """
    from brainsegfounder.data.validation import validate_cases

    # The seam for networks trained to accept missing modalities: they will take a constant
    # (all-zero) image as "missing" and set this from the checkpoint; today every modality is needed.
    allow_constant = bool(getattr(predictor, "accepts_missing_modalities", False))
    notes: list[str] = []
    counts = validate_cases(cases, read_data=True, allow_non_finite=non_finite == "zero",
                            allow_constant=allow_constant, whole_stream=True, background_notes=notes)
    from rich.markup import escape

    by_subject: dict[str, list[str]] = {}
    for note in sorted(notes):
        by_subject.setdefault(note.split(":", 1)[0], []).append(note)
    for same in by_subject.values():  # one line per subject: its first file, and how many more alike
        more = f" ({len(same) - 1} more of its files alike)" if len(same) > 1 else ""
        console.print(f"[yellow]note:[/] {escape(same[0])}{more}", highlight=False, soft_wrap=True)
    if non_finite != "zero":
        return {}
    for sid, count in counts.items():
        if count:
            console.print(f"[yellow]--non_finite zero:[/] subject {sid}: {count} NaN/Inf voxel(s) replaced by 0 "
                          "(column non_finite_voxels of volumes.csv)", highlight=False, soft_wrap=True)
    predictor.replace_non_finite = True
    return counts


def check_existing(cases, targets, record, digests) -> None:
    """Refuse (before any work) existing files with an output's name that this tool did not write as they are."""
    problems = []
    for case in cases:
        for path in targets(case.subject_id):
            if path.exists() and path.suffix != ".png":  # pictures are not measured from, and not recorded by hash
                why = record.problem(path, digests[case.subject_id])
                if why:
                    problems.append(f"{path}: {why}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError(f"--output already holds {len(problems)} file(s) with prediction names that cannot be "
                        f"trusted: {'; '.join(problems[:5])}{more}. Move them away, choose another --output, "
                        "or pass --overwrite to replace them.")


