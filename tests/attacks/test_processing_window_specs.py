"""Attacks, fourth round: a processing window is one of its spellings exactly, or refused when settings load."""

from __future__ import annotations

import pydantic
import pytest

from obsflow.settings import Settings


@pytest.mark.parametrize("spec", ["18:00-06:00\n", "night\n", "18:00 - 06:00", " night", "１８:00-06:00", "18:00-18:00",
                                  "24:00-06:00", ""])
def test_a_window_with_a_trailing_line_break_spaces_or_other_digits_is_refused_when_settings_load(spec):
    # When a stage's windows name one, Then the settings are refused, naming the spelling and the ones meant
    with pytest.raises(pydantic.ValidationError, match="is no processing window: any, night, day or local hours"):
        Settings(stage="unit", windows={"vbi-l1": spec})


def test_the_spellings_meant_are_taken():
    settings = Settings(stage="unit", windows={"vbi-l1": "night", "default": "any", "multi-core": "18:00-06:00"})
    assert settings.processing_windows().windows["multi-core"].spec == "18:00-06:00"


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_an_approval_size_that_would_switch_approval_off_or_mean_nothing_is_refused(value):
    # Given an approval size of infinity (approval off by accident), NaN or a negative number, Then it is refused
    with pytest.raises(pydantic.ValidationError):
        Settings(campaign_approval_cpu_hours=value)
