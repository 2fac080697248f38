"""Profiles are typed, frozen configuration, and a notebook's overrides are checked against the declared types."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from vpcost_utils import profiles
from vpcost_utils.errors import SpecError


@pytest.mark.parametrize("section", profiles.SECTIONS)
@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_every_profile_value_has_its_declared_type(section, profile):
    config = profiles.section_config(section, profile)
    hints = {**typing.get_type_hints(type(config)), **typing.get_type_hints(profiles.Common)}
    resolved = profiles.settings(section, profile)
    assert resolved.pop("profile") == profile
    for name, value in resolved.items():
        assert profiles._matches(value, hints[name]), (section, profile, name, value)


def test_profiles_cannot_be_changed_in_place():
    with pytest.raises(dataclasses.FrozenInstanceError):
        profiles.COMMON["smoke"].epochs = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        profiles.section_config("label_mapping", "mini").dense = "resnet50/dense"


def test_a_section_field_left_unset_takes_the_profiles_value_and_a_set_one_wins():
    assert profiles.settings("sparse_transfer", "mini")["shots"] == profiles.COMMON["mini"].shots
    assert profiles.settings("quantization", "mini")["shots"] == (1, 10)
    assert profiles.settings("calibration", "smoke")["quant_shots"] is None  # a section's own None is kept


def test_overrides_are_checked_against_the_declared_types():
    s = profiles.settings("your_model", "smoke", target_halfwidth=3, shots=[1, None], canvas=96)
    assert s["target_halfwidth"] == 3 and s["shots"] == [1, None] and s["canvas"] == 96
    with pytest.raises(SpecError, match="'canvas' must be an int or None"):
        profiles.settings("sparse_transfer", "smoke", canvas="96")
    with pytest.raises(SpecError, match="'shots' must be a list"):
        profiles.settings("sparse_transfer", "smoke", shots=["1"])
    with pytest.raises(SpecError, match="'substitute' must be True or False"):
        profiles.settings("sparse_transfer", "smoke", substitute=1)
    with pytest.raises(SpecError, match="'families'"):
        profiles.settings("sparse_transfer", "smoke", families={"acdc": "smallcnn/dense"})
