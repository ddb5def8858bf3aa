"""The variety levels: ``default`` keeps the demo's bytes, ``high`` varies anatomy, site and tumour."""

import hashlib

import numpy as np
import pytest

from brainsegfounder.data.synthetic import generate, synthesize_subject
from brainsegfounder.utils.errors import ConfigError
from tests.lock_versions import requires_lock

# sha256 of every image and the label of these subjects (seed 3, 4 mm) under requirements-lock.txt
# (numpy 2.4.6, scipy 1.17.1, nilearn 0.14.1, nibabel 5.4.2): the default level must not move them,
# or the demo's figures would. Other releases of these libraries move the bytes (nilearn's template,
# scipy's interpolation), so the comparison runs only under the lock; the generator's determinism
# and its variety are tested on any versions below.
BYTES_LIBRARIES = ("numpy", "scipy", "nilearn", "nibabel")
DEFAULT_SHA256 = {
    ("brats2021", 0): "33e79f28d6f6bddf828723a4b99d86ac4e21917080094a75ff03c564fc15e5ca",
    ("brats2023", 1): "3c0c1e735f120405918053d9a104fe5b33665ae7cafccfff795d5eda484a04e4",
    ("atlas", 0): "c3fde2f5bfce70fb5c39bee0a21d528ffcf7f4ec98cc63e650c1d607996601d6",
    ("ukb", 1): "2c61b6851c5995a75710fb8947ba9af35bd4717a620520c4594a8e4f3f7574da",
}


def digest(subject) -> str:
    h = hashlib.sha256()
    for name in sorted(subject.images):
        h.update(subject.images[name].tobytes())
    if subject.label is not None:
        h.update(subject.label.tobytes())
    return h.hexdigest()


@requires_lock(*BYTES_LIBRARIES)
@pytest.mark.parametrize("layout,index", sorted(DEFAULT_SHA256))
def test_default_level_is_byte_identical_to_before(layout, index):
    assert digest(synthesize_subject(layout, index, seed=3, spacing=4.0)) == DEFAULT_SHA256[(layout, index)]
    assert digest(synthesize_subject(layout, index, seed=3, spacing=4.0, variety="default")) == \
        DEFAULT_SHA256[(layout, index)]


@pytest.mark.parametrize("layout,index", sorted(DEFAULT_SHA256))
def test_default_level_repeats_itself_and_names_the_level_alike(layout, index):
    """On any versions: the same (seed, index) gives the same bytes, with or without the level named."""
    first = digest(synthesize_subject(layout, index, seed=3, spacing=4.0))
    assert first == digest(synthesize_subject(layout, index, seed=3, spacing=4.0, variety="default"))
    assert first != digest(synthesize_subject(layout, index + 1, seed=3, spacing=4.0))


def test_high_level_is_deterministic_and_differs_from_default():
    high = [synthesize_subject("brats2021", 0, seed=3, spacing=4.0, variety="high") for _ in range(2)]
    assert digest(high[0]) == digest(high[1])
    assert digest(high[0]) != digest(synthesize_subject("brats2021", 0, seed=3, spacing=4.0))
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
