"""One synthetic subject in memory: anatomy, the lesions its layout's label scheme calls for, contrasts.

What a subject carries follows from its layout's label scheme (:mod:`brainsegfounder.data.regions`):
no scheme -> healthy; a glioma scheme (ET, TC, WT regions) -> a glioma with its sub-regions; with
an RC region too (BraTS 2024) -> a glioma after resection, with its cavity; a one-region scheme
-> 1-3 chronic stroke lesions. A new layout is generated as soon as it is registered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from brainsegfounder.data.layouts import DatasetLayout, get_layout
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.data.synthetic.anatomy import deformed_anatomy, load_template
from brainsegfounder.data.synthetic.contrasts import ALL_CONTRASTS, CONTRAST, draw_contrast, render
from brainsegfounder.data.synthetic.lesions import (
    RC,
    Blend,
    label_values,
    mass_effect,
    plan_tumour,
    resection_cavity,
    strokes,
    tumour,
)
from brainsegfounder.data.synthetic.variety import (
    check_variety,
    texture_gain,
    variety_rng,
    vary_anatomy,
    vary_contrast,
    vary_tumour_plan,
)
from brainsegfounder.utils.errors import ConfigError

__all__ = ["SyntheticSubject", "synthesize_subject", "check_args", "check_timepoints", "growth_factors",
           "series_case_id"]

# A resection cavity holds fluid: CSF-like (dark T1/T1ce, bright T2), on FLAIR a little brighter
# than CSF (blood products and protein), relative to the subject's own CSF signal.
_CAVITY_VS_CSF = {"t1": 1.0, "t1ce": 1.0, "t2": 0.95, "flair": 1.6}


@dataclass
class SyntheticSubject:
    """One synthetic subject, in memory.

    Attributes:
        images: layout's modality name -> float32 volume (X, Y, Z), zero outside the brain.
        label: uint8 label map on the same grid (the layout's scheme's values), or None (``ukb``).
        affine: 4 x 4 voxel-to-MNI (RAS, mm) matrix shared by every volume.
        case_id: the subject's identifier as the real data set names it
            (``BraTS2021_00000``, ``BraTS-GLI-00000-000``, ``1000000``, ``sub-r001s001``).
        brain_mask: bool volume, True inside the (deformed) brain.
        tissue: ``"csf"``, ``"gm"``, ``"wm"`` -> float32 volume fractions (sum 1 in the brain,
            tumour and lesions included in the tissue they replaced): the ground truth behind
            the contrasts, e.g. to check them or to train tissue segmentation.
        timepoint: 0-based time point of a longitudinal series (0 for a single scan).
        volume_factor: the lesion's nominal volume relative to the first time point (its radii
            are scaled by the cube root); 1.0 for a single scan.
    """

    images: dict[str, np.ndarray]
    label: np.ndarray | None
    affine: np.ndarray
    case_id: str
    brain_mask: np.ndarray | None = None
    tissue: dict[str, np.ndarray] | None = None
    timepoint: int = 0
    volume_factor: float = 1.0


def check_args(layout: str | DatasetLayout, index: int = 0, seed: int = 0, spacing: float = 2.0) -> DatasetLayout:
    """The layout, once it is known to be one the generator can write and the numbers are sane."""
    from brainsegfounder.data.layouts import LAYOUTS

    if not isinstance(layout, DatasetLayout) and layout not in LAYOUTS:
        writable = [n for n, lay in LAYOUTS.items() if lay.namer and lay.case_id_format]
        raise ConfigError(f"unknown layout {layout!r}: choose one of {', '.join(writable)}.")
    spec = get_layout(layout)
    if spec.namer is None or spec.case_id_format is None:
        raise ConfigError(f"layout {spec.name} does not name its cases' files; the generator cannot write it.")
    unknown = [m for m in spec.modalities if m.lower() not in CONTRAST]
    if unknown:
        raise ConfigError(f"layout {spec.name}: no synthetic contrast for modalities {unknown}; known names: "
                          f"{', '.join(CONTRAST)} (add yours to synthetic.contrasts.CONTRAST).")
    if int(index) < 0 or int(seed) < 0:
        raise ConfigError(f"index and seed must be >= 0 (got index={index}, seed={seed}).")
    if not (0.5 <= float(spacing) <= 8.0):
        raise ConfigError(f"spacing must be between 0.5 and 8 mm (got {spacing}).")
    return spec


def synthesize_subject(layout: str | DatasetLayout, index: int, seed: int = 0, spacing: float = 2.0,
                       cohort: str | None = None, variety: str = "default", timepoint: int = 0,
                       timepoints: int = 1) -> SyntheticSubject:
    """Make subject ``index`` of ``layout`` in memory; the same ``(seed, index)`` gives the same arrays.

    Args:
        layout: a registered layout name (or layout) that names its cases' files.
        index: subject number (>= 0); the subject depends only on ``(seed, index)``.
        seed: random seed (>= 0).
        spacing: isotropic voxel size in mm (2.0 -> 99 x 117 x 95 voxels, 1.0 -> 197 x 233 x 189).
        cohort: BraTS 2023+ cohort of the case id (GLI, MET, MEN, PED, SSA); only the name changes.
        variety: ``default`` (the demo's subjects, unchanged) or ``high`` (more inter-subject
            and inter-site variation, :mod:`~brainsegfounder.data.synthetic.variety`).
        timepoint: which scan of a longitudinal series of ``timepoints`` (0-based). Every time point
            is the same person (anatomy, contrasts, lesion site and shape); the lesion's volume is
            scaled by :func:`growth_factors` and the noise is drawn anew. ``timepoints=1`` (the
            default) is the single-scan subject, unchanged.
        timepoints: length of the series (BraTS 2023+ ids ``-000``, ``-001``...; ATLAS ``ses-1``...).

    Returns:
        A :class:`SyntheticSubject`; glioma subjects always hold every label of their scheme.

    >>> s = synthesize_subject("brats2023", 3, seed=1, spacing=4.0)
    >>> sorted(s.images), sorted(int(v) for v in np.unique(s.label))
    (['t1c', 't1n', 't2f', 't2w'], [0, 1, 2, 3])
    """
    spec = check_args(layout, index, seed, spacing)
    check_timepoints(spec, timepoint, timepoints)
    series = timepoints > 1
    factors = growth_factors(seed, index, timepoints)
    scale = factors[timepoint] ** (1 / 3)
    box_scale = max(max(factors) ** (1 / 3), 1.0)
    scheme = get_scheme(spec.scheme) if spec.scheme else None
    values = label_values(scheme) if scheme is not None else {}
    tpl = load_template(float(spacing))
    # Independent streams, so that e.g. the tumour's draws never shift the anatomy's: subject i is
    # the same person in every layout.
    anatomy_rng, contrast_rng, lesion_rng, noise_rng = np.random.default_rng([int(seed), int(index)]).spawn(4)
    anatomy = deformed_anatomy(anatomy_rng, tpl)
    params = {c: draw_contrast(contrast_rng, c, tpl) for c in ALL_CONTRASTS}
    high = check_variety(variety) == "high"
    if high:
        extra = variety_rng(seed, index)
        vary_anatomy(extra, anatomy, tpl)
        params = {c: vary_contrast(extra, params[c]) for c in ALL_CONTRASTS}
    if series and timepoint > 0:  # a new scan: new noise
        noise_rng = np.random.default_rng([int(seed), int(index), 0x5E55, int(timepoint)])
    noise_rngs = dict(zip(ALL_CONTRASTS, noise_rng.spawn(len(ALL_CONTRASTS)), strict=True))

    label = None
    blends: list[Blend] = []
    if len(values) > 1:  # a glioma
        plan = plan_tumour(lesion_rng, anatomy, tpl)
        if high:
            plan = vary_tumour_plan(extra, plan)
        box_mm = 1.6 * plan[1] * box_scale + 2 * tpl.spacing if series else None
        plan = (plan[0], *(r * scale for r in plan[1:]))
        mass_effect(anatomy, tpl, plan[0], radius_mm=plan[2], strength=lesion_rng.uniform(0.2, 0.5))
        anatomy.finish()
        signals = [{c: params[c].tumour[k] for c in ALL_CONTRASTS} for k in range(3)]
        label, blends = tumour(lesion_rng, anatomy, tpl, plan, signals, box_radius_mm=box_mm)
        if high:
            gain = texture_gain(extra)
            for blend in blends:
                blend.texture = blend.texture * gain
        if RC in values:
            cavity = {c: params[c].tissue[0] * _CAVITY_VS_CSF[c] * math.exp(lesion_rng.normal(0.0, 0.06))
                      for c in ALL_CONTRASTS}
            blends.append(resection_cavity(lesion_rng, anatomy, tpl, plan, label, cavity))
    elif values:
        anatomy.finish()
        signals = [{c: params[c].stroke[k] for c in ALL_CONTRASTS} for k in range(2)]
        label, blends = strokes(lesion_rng, anatomy, tpl, signals, scale=scale, box_scale=box_scale)
    else:
        anatomy.finish()
    if label is not None:
        lookup = np.zeros(max(values) + 1, dtype=np.uint8)
        for code, value in values.items():
            lookup[code] = value
        label = lookup[label]

    images = {}
    for modality in spec.modalities:
        contrast = CONTRAST[modality.lower()]
        images[modality] = render(contrast, params[contrast], anatomy, blends, tpl, noise_rngs[contrast])
    return SyntheticSubject(images=images, label=label, affine=np.array(tpl.affine),
                            case_id=series_case_id(spec, int(index), cohort, timepoint, timepoints),
                            brain_mask=anatomy.brain, tissue={"csf": anatomy.csf, "gm": anatomy.gm, "wm": anatomy.wm},
                            timepoint=int(timepoint), volume_factor=float(factors[timepoint]))


def growth_factors(seed: int, index: int, timepoints: int) -> list[float]:
    """Lesion volume at each time point relative to the first: each interval multiplies it by 0.6 to 1.8.

    Drawn from a stream of its own, so a series never shifts the subject's other draws.

    >>> growth_factors(0, 0, 1)
    [1.0]
    >>> f = growth_factors(0, 0, 3); f[0], len(f), all(0.35 < x < 3.3 for x in f)
    (1.0, 3, True)
    """
    rng = np.random.default_rng([int(seed), int(index), 0x6A0E])
    steps = np.exp(rng.uniform(math.log(0.6), math.log(1.8), size=max(int(timepoints) - 1, 0)))
    return [1.0, *np.cumprod(steps).tolist()]


def check_timepoints(spec: DatasetLayout, timepoint: int = 0, timepoints: int = 1) -> None:
    """Refuse a series the layout cannot name (only BraTS 2023+ and ATLAS/BIDS name time points)."""
    if int(timepoints) < 1 or not 0 <= int(timepoint) < int(timepoints):
        raise ConfigError(f"timepoints must be >= 1 and timepoint in [0, timepoints) (got timepoint={timepoint}, "
                          f"timepoints={timepoints}).")
    if int(timepoints) > 1 and "{timepoint" not in (spec.case_id_format or "") and spec.name != "atlas":
        raise ConfigError(f"layout {spec.name} names no time points; a longitudinal series needs brats2023 or "
                          "brats2024 (case ids -000, -001 ...) or atlas (sessions ses-1, ses-2 ...).")
    if int(timepoints) > 1 and not spec.scheme:
        raise ConfigError(f"layout {spec.name} has no lesions to grow; a series needs a labelled layout.")


def series_case_id(spec: DatasetLayout, index: int, cohort: str | None, timepoint: int, timepoints: int) -> str:
    """The case id of one scan: BraTS 2023+ ``BraTS-GLI-00003-001``; BIDS ``sub-r001s004_ses-2`` in a series.

    >>> from brainsegfounder.data.layouts import get_layout
    >>> series_case_id(get_layout("atlas"), 3, None, 1, 2), series_case_id(get_layout("brats2023"), 3, None, 1, 2)
    ('sub-r001s004_ses-2', 'BraTS-GLI-00003-001')
    """
    if "{timepoint" in (spec.case_id_format or ""):
        return spec.case_id(index, cohort, timepoint)
    case_id = spec.case_id(index, cohort)
    return f"{case_id}_ses-{timepoint + 1}" if timepoints > 1 else case_id
