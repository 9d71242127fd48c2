"""The VIN check digit (ISO 3779 / 49 CFR 565) on real VINs, and what the messages say about bad ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.vin import VIN_ALPHABET, check_digit, is_valid_vin, normalise_vin, vin_problem

REAL_VINS = [
    "1M8GDM9AXKP042788",  # the standard example: check digit X
    "11111111111111111",  # all ones checks too
    "1HGCM82633A004352",  # Honda Accord
    "JH4KA7561PC008269",  # Acura Legend
    "KNAUVA7P4PV916914",  # Kia, from the demo fleet
]


@pytest.mark.parametrize("vin", REAL_VINS)
def test_real_vins_check(vin):
    assert vin_problem(vin) is None
    assert is_valid_vin(vin)
    assert check_digit(vin) == vin[8]


def test_the_standard_example_has_check_digit_x():
    assert check_digit("1M8GDM9AXKP042788") == "X"


def test_a_wrong_check_digit_says_what_it_should_be():
    problem = vin_problem("1M8GDM9A1KP042788")
    assert "9th character (the check digit) is 1" in problem
    assert "must be X" in problem


def test_one_mistyped_character_is_caught():
    problem = vin_problem("1HGCM82633A004353")  # last digit changed
    assert problem is not None and "does not check" in problem and "must be" in problem


@pytest.mark.parametrize(("vin", "fragment"), [
    ("1M8GDM9AXKP04278", "has 16"),
    ("1M8GDM9AXKP0427888", "has 18"),
    ("", "has 0"),
])
def test_the_length_is_17(vin, fragment):
    problem = vin_problem(vin)
    assert "A VIN has 17 characters" in problem and fragment in problem


@pytest.mark.parametrize("letter", ["I", "O", "Q"])
def test_i_o_and_q_are_refused_with_the_reason(letter):
    vin = "1M8GDM9AXKP04278" + letter
    problem = vin_problem(vin)
    assert repr(letter) in problem and "never use I, O or Q" in problem


def test_symbols_are_refused():
    problem = vin_problem("1M8GDM9AXKP04278*")
    assert "'*'" in problem and "only the letters A-Z and digits 0-9" in problem


def test_typing_aids_are_removed_before_checking():
    assert normalise_vin(" 1m8gdm9a-xkp 042788 ") == "1M8GDM9AXKP042788"


@given(st.text(alphabet=VIN_ALPHABET, min_size=17, max_size=17))
def test_every_vin_with_its_computed_check_digit_checks(body):
    vin = body[:8] + check_digit(body) + body[9:]
    assert is_valid_vin(vin)
    wrong = next(c for c in "0123456789X" if c != vin[8])
    assert not is_valid_vin(vin[:8] + wrong + vin[9:])
