"""The variety levels: ``default`` keeps the demo's bytes, ``high`` varies anatomy, site and tumour."""

import hashlib

import numpy as np
import pytest

from brainsegfounder.data.synthetic import generate, synthesize_subject
from brainsegfounder.utils.errors import ConfigError

# sha256 of every image and the label of these subjects (seed 3, 4 mm) as main wrote them before the
# variety levels existed: the default level must not move them, or the demo's figures would.
DEFAULT_SHA256 = {
    ("brats2021", 0): "4533d026aaac7a4e58c311749ab189af763eaa8c92715baa8d30ed301064c7db",
    ("brats2023", 1): "c74237136850d503318381bc5210d7efbbbe8d3b2c5b8aadfbefdb9af107f5f2",
    ("atlas", 0): "a621af6ddfa8be22937e2ce7d188049b03f6061566ee5a9c3c9d3ff52da75138",
    ("ukb", 1): "a8327579df43e899b11d9f6413a4b8b6e78f9d6de44e0310f2a020cda9a2c143",
}


def digest(subject) -> str:
    h = hashlib.sha256()
    for name in sorted(subject.images):
        h.update(subject.images[name].tobytes())
    if subject.label is not None:
        h.update(subject.label.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("layout,index", sorted(DEFAULT_SHA256))
def test_default_level_is_byte_identical_to_before(layout, index):
    assert digest(synthesize_subject(layout, index, seed=3, spacing=4.0)) == DEFAULT_SHA256[(layout, index)]
    assert digest(synthesize_subject(layout, index, seed=3, spacing=4.0, variety="default")) == \
        DEFAULT_SHA256[(layout, index)]


def test_high_level_is_deterministic_and_differs_from_default():
    high = [synthesize_subject("brats2021", 0, seed=3, spacing=4.0, variety="high") for _ in range(2)]
    assert digest(high[0]) == digest(high[1])
    assert digest(high[0]) != DEFAULT_SHA256[("brats2021", 0)]
    assert set(np.unique(high[0].label)) == {0, 1, 2, 4}  # still every BraTS label
    assert high[0].case_id == "BraTS2021_00000"


def test_high_level_spreads_subjects_further_apart():
    """Brain volume and grey-white contrast vary more between subjects at the high level."""
    def spread(variety):
        subjects = [synthesize_subject("ukb", i, seed=0, spacing=4.0, variety=variety) for i in range(6)]
        volumes = [s.brain_mask.sum() for s in subjects]
        ratios = []
        for s in subjects:
            t1 = s.images["t1"]
            ratios.append(np.median(t1[s.tissue["wm"] > 0.9]) / np.median(t1[s.tissue["gm"] > 0.6]))
        return np.std(volumes) / np.mean(volumes), np.std(ratios)

    (vol_default, contrast_default), (vol_high, contrast_high) = spread("default"), spread("high")
    assert vol_high > vol_default and contrast_high > contrast_default


def test_unknown_variety_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="default, high"):
        generate("brats2021", tmp_path, subjects=1, spacing=4.0, variety="extreme")
    assert not any(tmp_path.iterdir())
