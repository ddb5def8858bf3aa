"""Rigid co-registration of one series to the reference series (SimpleITK, Mattes mutual information).

:func:`register` runs SimpleITK's registration framework: a rigid ``Euler3DTransform`` started at
the identity (series of one study share the scanner's frame of reference, so only head motion is
left to find), Mattes mutual information (works across contrasts), a regular-step gradient descent
with scales from physical shifts, three resolution levels, 100,000 random samples per level (fixed
seed). The result maps points of the reference series (fixed) to the series (moving), as
``sitk.Resample`` wants it.

:func:`check_registration` is the similarity check after registration: the mutual information
must have improved on the starting position, the motion must be one a head makes between two
series of one session (at most :data:`MAX_ROTATION_DEG` and :data:`MAX_SHIFT_MM`), and the
normalised mutual information of the aligned pair must reach :data:`MIN_NMI`; otherwise the
series is refused by name. :func:`registration_error` measures an estimate against a known motion
(mean distance over points, mm). The registration is SimpleITK's; the checks are hand-written glue.

Example:
    >>> import SimpleITK as sitk
    >>> fixed = sitk.GaussianSource(sitk.sitkFloat32, [48, 48, 48], [6, 9, 5], [24, 22, 25], 100)
    >>> moving = sitk.Resample(fixed, sitk.TranslationTransform(3, (2.0, 0.0, 0.0)))
    >>> shift = register(fixed, moving).transform.GetTranslation()  # fixed points -> moving points
    >>> abs(shift[0] + 2.0) < 0.2 and abs(shift[1]) < 0.2 and abs(shift[2]) < 0.2
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from brainsegfounder.utils.errors import DataError

__all__ = ["Registration", "register", "check_registration", "registration_error", "normalised_mi",
           "MAX_ROTATION_DEG", "MAX_SHIFT_MM", "MIN_NMI"]

#: The largest head motion between two series of one session that is believed (degrees, mm).
MAX_ROTATION_DEG = 15.0
MAX_SHIFT_MM = 30.0
#: Normalised mutual information (H(A) + H(B)) / H(A, B) below this: the pair shares no anatomy.
MIN_NMI = 1.05


@dataclass
class Registration:
    """One series' rigid registration to the reference: reference points -> series points."""

    transform: object  # sitk.Euler3DTransform
    metric_before: float  # Mattes MI at the starting position (lower is better)
    metric_after: float
    iterations: int
    stop: str

    @property
    def rotation_deg(self) -> float:
        """Rotation angle of the transform, in degrees."""
        rotation = np.array(self.transform.GetMatrix()).reshape(3, 3)
        return math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(rotation) - 1) / 2))))

    @property
    def shift_mm(self) -> float:
        """How far the centre of rotation moves, in mm."""
        return float(np.linalg.norm(self.transform.GetTranslation()))

    def to_dict(self) -> dict:
        return {"rotation_deg": round(self.rotation_deg, 4), "shift_mm": round(self.shift_mm, 4),
                "mattes_mi_before": round(self.metric_before, 6), "mattes_mi_after": round(self.metric_after, 6),
                "iterations": self.iterations, "stop": self.stop,
                "parameters": [round(v, 8) for v in self.transform.GetParameters()],
                "center_mm": [round(v, 6) for v in self.transform.GetFixedParameters()[:3]]}


#: Shrink factors and smoothing (mm) of the three resolution levels, and metric samples per level.
_SHRINK, _SMOOTH_MM, _SAMPLES = (4, 2, 1), (3.0, 1.5, 0.0), 100_000


def _method(seed: int, voxels: int, levels=(1,)):
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    # A fixed number of random samples per level (at most half the voxels): large series cost no more.
    shares = [min(0.5, _SAMPLES * shrink**3 / max(voxels, 1)) for shrink in levels]
    method.SetMetricSamplingPercentagePerLevel(shares, seed)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def register(fixed, moving, seed: int = 0, start=None) -> Registration:
    """Rigidly register ``moving`` to ``fixed`` (both SimpleITK float volumes in one scanner frame).

    ``start``: the Euler3D transform to start from (default: the identity about the fixed image's
    centre); the atlas registration starts from the brains' centres of mass.
    """
    import SimpleITK as sitk

    if start is None:
        centre = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()])
        start = sitk.Euler3DTransform()
        start.SetCenter(centre)
    voxels = int(np.prod(fixed.GetSize()))
    probe = _method(seed, voxels)
    probe.SetInitialTransform(start)
    before = probe.MetricEvaluate(fixed, moving)
    method = _method(seed, voxels, _SHRINK)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=300,
                                                    relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(_SHRINK))
    method.SetSmoothingSigmasPerLevel(list(_SMOOTH_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(sitk.Euler3DTransform(start), inPlace=False)
    found = method.Execute(fixed, moving)
    if found.GetName() == "CompositeTransform":
        found = sitk.CompositeTransform(found).GetNthTransform(0)
    transform = sitk.Euler3DTransform()
    transform.SetFixedParameters(found.GetFixedParameters())
    transform.SetParameters(found.GetParameters())
    return Registration(transform, float(before), float(method.GetMetricValue()),
                        int(method.GetOptimizerIteration()), method.GetOptimizerStopConditionDescription())


def normalised_mi(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """(H(A) + H(B)) / H(A, B) over voxels where both are non-zero: 1 for unrelated images, up to 2."""
    keep = (a != 0) & (b != 0)
    if keep.sum() < 100:
        return 1.0
    joint, _, _ = np.histogram2d(a[keep], b[keep], bins=bins)
    p = joint / joint.sum()

    def entropy(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    return (entropy(p.sum(1)) + entropy(p.sum(0))) / max(entropy(p), 1e-12)


def check_registration(result: Registration, nmi: float, name: str, reference: str) -> None:
    """Refuse a registration that did not converge (see the module's text), naming the series."""
    problems = []
    if result.metric_after > result.metric_before + 1e-6:
        problems.append(f"the mutual information got worse ({result.metric_before:.4f} -> {result.metric_after:.4f})")
    if result.rotation_deg > MAX_ROTATION_DEG or result.shift_mm > MAX_SHIFT_MM:
        problems.append(f"it found a motion of {result.rotation_deg:.1f} degrees and {result.shift_mm:.1f} mm "
                        f"(a head moves at most {MAX_ROTATION_DEG:g} degrees / {MAX_SHIFT_MM:g} mm between series)")
    if nmi < MIN_NMI:
        problems.append(f"the aligned series share little information (normalised MI {nmi:.3f} < {MIN_NMI})")
    if problems:
        raise DataError(f"registration of series {name} to the reference {reference} did not converge: "
                        f"{'; '.join(problems)}. Check that it shows the same head in the same session, or "
                        "choose another series with --series (or another reference with --reference).")


def registration_error(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """Mean distance (mm) between where two 4 x 4 transforms send ``points`` (N x 3).

    >>> shift = np.eye(4); shift[0, 3] = 1.5
    >>> registration_error(shift, np.eye(4), np.zeros((5, 3)))
    1.5
    """
    homogeneous = np.c_[points, np.ones(len(points))]
    return float(np.linalg.norm((homogeneous @ (estimate - truth).T)[:, :3], axis=1).mean())
