"""The label authority: schemes round-trip, read a lab's own file, and know their legends."""

import json

import numpy as np
import pytest
import torch

from brainsegfounder.data.regions import RegionScheme, get_scheme, register_scheme, scheme_from_file
from brainsegfounder.utils.errors import ConfigError


def test_brats2024_four_labels_paint_and_unpaint_exactly():
    scheme = get_scheme("brats2024")
    label = np.random.default_rng(0).choice(np.array([0, 1, 2, 3, 4], np.uint8), size=(6, 7, 8))
    channels = scheme.channel_masks(label)
    assert channels.shape == (4, 6, 7, 8) and scheme.names == ("TC", "WT", "ET", "RC")
    np.testing.assert_array_equal(channels[3], label == 4)                 # the cavity is outside WT
    np.testing.assert_array_equal(channels[1], np.isin(label, (1, 2, 3)))
    np.testing.assert_array_equal(scheme.label_from_channels(channels), label)
    as_tensor = torch.from_numpy(label)[None, None]
    assert torch.equal(scheme.to_label(scheme.to_regions(as_tensor)), as_tensor)
    masks = scheme.region_masks(label)
    assert list(masks) == ["ET", "NETC", "SNFH", "RC", "TC", "WT"]
    np.testing.assert_array_equal(masks["NETC"], label == 1)
    np.testing.assert_array_equal(masks["TC"], np.isin(label, (1, 3)))
    assert scheme.invalid_values([0, 4, 5, 3]) == [5]
    assert scheme.legend[4][0] == "resection cavity (RC)" and len({c for _, c in scheme.legend.values()}) == 4


def test_scheme_dict_round_trip_keeps_everything():
    for name in ("brats2021", "brats2023", "brats2024", "lesion"):
        scheme = get_scheme(name)
        again = RegionScheme.from_dict(json.loads(json.dumps(scheme.to_dict())))
        assert again == scheme


def test_lab_scheme_from_yaml_file(tmp_path):
    path = tmp_path / "ms_lesions.yaml"
    path.write_text("lesion: [1, 2]\nenhancing: [2]\n")
    scheme = get_scheme(str(path))
    assert scheme == scheme_from_file(path)
    assert (scheme.name, scheme.names, scheme.rules) == ("ms_lesions", ("lesion", "enhancing"), "plain")
    assert scheme.label_values == {0, 1, 2}
    label = np.array([0, 1, 2, 1], np.uint8).reshape(1, 1, 4)
    # Painted in file order with each region's first value: lesion -> 1, then enhancing -> 2.
    np.testing.assert_array_equal(scheme.label_from_channels(scheme.channel_masks(label)), label)
    assert scheme.legend == {1: ("lesion", scheme.legend[1][1]), 2: ("enhancing", scheme.legend[2][1])}
    assert scheme.legend[1][1] != scheme.legend[2][1]
    full = tmp_path / "full.json"
    full.write_text(json.dumps({**scheme.to_dict(), "rules": "atlas"}))
    assert get_scheme(full).rules == "atlas" and get_scheme(full).names == scheme.names


def test_bad_scheme_files_and_rules_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lesion: [one]\n")
    with pytest.raises(ConfigError, match="integer label values"):
        get_scheme(bad)
    with pytest.raises(ConfigError, match="cannot be read"):
        get_scheme(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown rule set"):
        register_scheme(RegionScheme(("a",), ((1,),), ((0, 1),), name="x", rules="brats2099"))
