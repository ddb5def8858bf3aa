"""The overlay pictures (report/overlays.py): predict --png, evaluate --png and the training callback draw them."""

from __future__ import annotations

import numpy as np
import pytest

from brainsegfounder.report.overlays import largest_lesion_centre, save_overlay
from brainsegfounder.utils.errors import ConfigError

SHAPE = (24, 24, 16)


def test_save_overlay_binary_with_reference_and_image(tmp_path):
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 2:5, 2:5] = 1
    label[10:20, 10:20, 5:12] = 1
    assert largest_lesion_centre(label) == (14, 14, 8)
    assert largest_lesion_centre(np.zeros(SHAPE)) is None
    path = tmp_path / "sub" / "x.png"
    save_overlay(np.random.default_rng(0).random(SHAPE), label, path, title="x", convention="binary",
                 reference=label)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="unknown label scheme 'rgb'"):
        save_overlay(None, label, path, scheme="rgb")
