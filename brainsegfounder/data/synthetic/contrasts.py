"""Synthetic contrasts: tissue and lesion signal per MRI contrast, bias field, Rician noise.

:data:`CONTRAST` says which contrast a modality name is (BraTS 2021 and 2023+ names, BIDS
``t1w``); a layout with other modality names adds them there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainsegfounder.data.synthetic.anatomy import Anatomy, Template, spline_weights
from brainsegfounder.data.synthetic.lesions import Blend

#: The MRI contrast each modality name is; unknown names are refused with this list.
CONTRAST = {
    "flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2",
    "t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair", "t1w": "t1",
}
# Parameters of all four contrasts are always drawn, in this order, so that a subject's random
# streams do not depend on which contrasts its layout writes.
ALL_CONTRASTS = ("t1", "t1ce", "t2", "flair")

# Relative signal of CSF, GM, WM: T1 WM > GM > CSF, T2 CSF > GM > WM, FLAIR is T2-weighted
# with the free water nulled, so CSF goes dark and GM stays brighter than WM.
_TISSUE_SIGNAL = {
    "t1": (0.25, 0.60, 0.85),
    "t1ce": (0.25, 0.60, 0.85),
    "t2": (1.00, 0.55, 0.40),
    "flair": (0.12, 0.65, 0.50),
}
# Relative signal of necrosis, edema, enhancing tumour. Edema: long T2 (bright T2/FLAIR, dark T1);
# enhancing rim: gadolinium shortens T1, so it lights up on T1ce only; necrosis: fluid-like, dark
# on T1/T1ce, bright on T2, partly suppressed on FLAIR.
_TUMOUR_SIGNAL = {
    "t1": (0.20, 0.50, 0.55),
    "t1ce": (0.22, 0.52, 1.25),
    "t2": (0.95, 0.85, 0.65),
    "flair": (0.40, 0.95, 0.75),
}
# Relative signal of a chronic stroke lesion's cavity and its gliotic border: the cavity is
# CSF-like (dark T1, dark FLAIR, bright T2); gliosis is bright on FLAIR.
_STROKE_SIGNAL = {
    "t1": (0.30, 0.45),
    "t1ce": (0.30, 0.45),
    "t2": (0.90, 0.75),
    "flair": (0.20, 0.80),
}


@dataclass
class ContrastParams:
    tissue: tuple[float, float, float]
    tumour: tuple[float, float, float]
    stroke: tuple[float, float]
    bias_coarse: np.ndarray
    noise: float
    gain: float
    vessel_gain: float
    # Site effects of the "high" variety level (synthetic.variety); the defaults leave images as they were.
    gamma: float = 1.0  # intensity curve: signal ** gamma, relative to the brightest tissue
    blur_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # thick slices: Gaussian FWHM per axis (mm)


_BIAS_CONTROL_MM = 60.0


def draw_contrast(rng: np.random.Generator, contrast: str, tpl: Template) -> ContrastParams:
    def jitter(values, sd):
        return tuple(float(v * math.exp(rng.normal(0.0, sd))) for v in values)

    n_nodes = tuple(int(math.ceil(e / _BIAS_CONTROL_MM)) + 3 for e in tpl.extent_mm)
    return ContrastParams(
        tissue=jitter(_TISSUE_SIGNAL[contrast], 0.05),
        tumour=jitter(_TUMOUR_SIGNAL[contrast], 0.06),
        stroke=jitter(_STROKE_SIGNAL[contrast], 0.06),
        bias_coarse=rng.normal(0.0, rng.uniform(0.05, 0.15), size=n_nodes).astype(np.float32),
        noise=float(rng.uniform(0.01, 0.035)),
        gain=float(rng.uniform(400.0, 1500.0)),
        vessel_gain=float(rng.uniform(0.3, 0.6)) if contrast == "t1ce" else 0.0,
    )


def _bias_field(params: ContrastParams, tpl: Template) -> np.ndarray:
    start = tpl.origin - _BIAS_CONTROL_MM
    wx, wy, wz = (spline_weights(n, (a - s0) / _BIAS_CONTROL_MM)
                  for a, s0, n in zip(tpl.axes_mm(), start, params.bias_coarse.shape, strict=True))
    log_bias = np.tensordot(np.tensordot(np.tensordot(wx, params.bias_coarse, axes=(1, 0)),
                                         wy, axes=(1, 1)), wz, axes=(1, 1))
    return np.exp(log_bias).astype(np.float32)


def render(contrast: str, params: ContrastParams, anatomy: Anatomy, blends: list[Blend],
            tpl: Template, rng: np.random.Generator) -> np.ndarray:
    csf_sig, gm_sig, wm_sig = params.tissue
    image = anatomy.csf * csf_sig + anatomy.gm * gm_sig + anatomy.wm * wm_sig
    if params.vessel_gain and anatomy.vessels is not None:
        image += params.vessel_gain * anatomy.vessels * anatomy.csf
    for blend in blends:
        target = blend.signal[contrast] * (1.0 + blend.texture)
        region = image[blend.box]
        image[blend.box] = region + blend.fraction * (target - region)
    if params.gamma != 1.0:
        top = np.float32(max(params.tissue))
        image = top * np.power(np.maximum(image, 0.0) / top, np.float32(params.gamma), dtype=np.float32)
    if any(params.blur_mm):
        image = ndimage.gaussian_filter(image, sigma=[b / 2.355 / tpl.spacing for b in params.blur_mm])
    image *= _bias_field(params, tpl)
    # Rician magnitude noise: Gaussian noise on both channels of the complex signal.
    sigma = params.noise * max(params.tissue)
    noise = rng.standard_normal((2, *image.shape), dtype=np.float32) * np.float32(sigma)
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
    image *= anatomy.brain
    image *= np.float32(params.gain)
    return image.astype(np.float32, copy=False)

