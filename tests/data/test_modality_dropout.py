"""Modality dropout: never all channels, identity at p=0, the documented statistics, and the
tensor a prediction builds for a case with missing files."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torchio as tio

from brainsegfounder.data.layouts import cases_to_subjects, find_cases
from brainsegfounder.data.modality_dropout import (
    DROPPED_KEY,
    MISSING_VALUE,
    RandomModalityDropout,
    missing_channels_tensor,
    nonempty_subsets,
    parse_modalities,
)
from brainsegfounder.data.transforms import preprocessing
from brainsegfounder.utils.errors import ConfigError, DataError

MODALITIES = ("flair", "t1ce", "t1", "t2")


def _subject(names=MODALITIES) -> tio.Subject:
    # Each channel its own non-zero constant, so a dropped one (exactly 0) is unambiguous.
    images = {m: tio.ScalarImage(tensor=torch.full((1, 4, 4, 4), i + 1.0)) for i, m in enumerate(names)}
    return tio.Subject(images, label=tio.LabelMap(tensor=torch.zeros(1, 4, 4, 4, dtype=torch.uint8)))


def _zeroed(subject: tio.Subject, names=MODALITIES) -> set[str]:
    return {m for m in names if bool((subject[m].data == MISSING_VALUE).all())}


def test_never_drops_every_modality_and_records_what_it_dropped():
    torch.manual_seed(0)
    transform = RandomModalityDropout(p=1.0)
    for _ in range(300):
        out = transform(_subject())
        zeroed = _zeroed(out)
        assert 1 <= len(zeroed) <= 3                       # p=1: at least one dropped, never all four
        assert set(out[DROPPED_KEY]) == zeroed
        assert (out["label"].data == 0).all()              # labels are never touched


def test_probability_zero_is_the_identity():
    torch.manual_seed(1)
    transform = RandomModalityDropout(p=0.0)
    for _ in range(50):
        subject = _subject()
        out = transform(subject)
        assert out[DROPPED_KEY] == []
        for m in MODALITIES:
            assert torch.equal(out[m].data, subject[m].data)


def test_statistics_over_many_draws():
    torch.manual_seed(2)
    transform = RandomModalityDropout(p=0.5)
    draws = 4000
    kept = Counter()
    dropped_any = 0
    for _ in range(draws):
        names = transform.draw_dropped(MODALITIES)
        dropped_any += bool(names)
        kept[tuple(m for m in MODALITIES if m not in names)] += 1
    # Dropping happens with probability p ...
    assert abs(dropped_any / draws - 0.5) < 0.03
    # ... and then the kept subset is uniform over the 14 non-empty proper subsets.
    proper = [s for s in nonempty_subsets(MODALITIES) if len(s) < len(MODALITIES)]
    assert set(kept) == set(proper) | {MODALITIES}
    expected = dropped_any / len(proper)
    for subset in proper:
        assert abs(kept[subset] - expected) < 4 * np.sqrt(expected)   # 4 sigma, binomial
    # Each modality is left out of 7 of the 14 kept subsets -> missing in p * 7/14 of samples.
    for m in MODALITIES:
        missing = sum(n for s, n in kept.items() if m not in s)
        assert abs(missing / draws - 0.5 * 7 / 14) < 0.03


def test_one_modality_is_never_dropped():
    out = RandomModalityDropout(p=1.0)(_subject(("t1",)))
    assert out[DROPPED_KEY] == [] and float(out["t1"].data.min()) == 1.0


def test_only_the_named_modalities_are_candidates():
    torch.manual_seed(3)
    transform = RandomModalityDropout(p=1.0, modalities=["t1ce", "t2"])
    for _ in range(50):
        out = transform(_subject())
        assert _zeroed(out) in ({"t1ce"}, {"t2"})


def test_bad_probability_is_a_config_error():
    with pytest.raises(ConfigError, match="between 0 and 1"):
        RandomModalityDropout(p=1.5)


def test_dropout_after_normalisation_on_real_nifti_files(brats2021_root):
    """On a real synthetic case: preprocessing then dropout gives exactly MISSING_VALUE in the
    dropped channels and untouched z-scored ones elsewhere; the real patch queue carries the record."""
    case = find_cases("brats2021", brats2021_root)[0]
    subject = cases_to_subjects([case])[0]
    steps = tio.Compose([*preprocessing((64, 64, 64)), RandomModalityDropout(p=1.0)])
    torch.manual_seed(4)
    out = steps(subject)
    dropped = out[DROPPED_KEY]
    assert 1 <= len(dropped) <= 3
    for m in MODALITIES:
        data = out[m].data
        if m in dropped:
            assert bool((data == MISSING_VALUE).all())
        else:
            assert float(data.std()) > 0.5      # a real z-scored image, not a constant
    queue = tio.Queue(tio.SubjectsDataset([subject], transform=steps), max_length=2, samples_per_volume=2,
                      sampler=tio.UniformSampler(32), num_workers=0)
    patch = queue[0]   # the queue draws again: check the record matches the patch itself
    assert 1 <= len(patch[DROPPED_KEY]) <= 3 and set(patch[DROPPED_KEY]) == _zeroed(patch)


def test_missing_channels_tensor_fills_and_orders():
    t1 = np.full((5, 6, 7), 2.0, np.float32)
    x = missing_channels_tensor({"t1": t1, "flair": None}, MODALITIES, case="BraTS2021_00000")
    assert x.shape == (4, 5, 6, 7) and x.dtype == torch.float32
    assert float(x[2].min()) == 2.0
    for i in (0, 1, 3):
        assert bool((x[i] == MISSING_VALUE).all())


def test_missing_channels_tensor_errors_name_the_case():
    with pytest.raises(DataError, match="BraTS2021_00001.*none of the model's modalities"):
        missing_channels_tensor({"flair": None}, MODALITIES, case="BraTS2021_00001")
    with pytest.raises(DataError, match="different shapes"):
        missing_channels_tensor({"t1": torch.ones(2, 2, 2), "t2": torch.ones(2, 2, 3)}, MODALITIES, case="c")


def test_parse_modalities():
    assert parse_modalities("t2,flair", MODALITIES) == ("flair", "t2")
    with pytest.raises(ConfigError, match="t1c"):
        parse_modalities("t1c", MODALITIES)
