"""Vehicle identification numbers (ISO 3779): the alphabet and the check digit in position 9.

The check digit is mandatory in North America and optional elsewhere; Fleetdesk requires it of every car, because a
VIN that fails it has almost always been mistyped. (A European-market VIN without one, such as many 'WP0ZZZ…', is
refused; relax `vin_problem` if the fleet ever buys such cars.)
"""

from __future__ import annotations

import re

VIN_LENGTH = 17
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O or Q: they read as 1 and 0
VIN_PATTERN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_VALUES = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise_vin(raw: str) -> str:
    """Upper case, without the spaces and hyphens people type to keep their place."""
    return re.sub(r"[\s\-]", "", raw).upper()


def check_digit(vin: str) -> str:
    """The check digit a 17-character VIN of the VIN alphabet must carry in position 9: '0'-'9' or 'X'."""
    total = sum(_VALUES[char] * weight for char, weight in zip(vin.upper(), _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def vin_problem(vin: str) -> str | None:
    """What is wrong with a (normalised) VIN, as a sentence, or None when it is valid."""
    if len(vin) != VIN_LENGTH:
        return f"A VIN has {VIN_LENGTH} characters; {vin[:30]!r} has {len(vin)}. Copy it again from the " \
               "registration document."
    wrong = sorted({char for char in vin if char not in VIN_ALPHABET})
    if wrong:
        shown = ", ".join(repr(c) for c in wrong[:5])
        hint = " (VINs never use I, O or Q: they would read as 1 and 0)" if set(wrong) & set("IOQ") else ""
        return f"The VIN {vin!r} contains {shown}; a VIN holds only the letters A-Z and digits 0-9{hint}."
    expected = check_digit(vin)
    if vin[8] != expected:
        return (f"The VIN {vin} does not check: its 9th character (the check digit) is {vin[8]}, but for the other "
                f"16 characters it must be {expected}. A character was probably mistyped; copy the VIN again.")
    return None


def is_valid_vin(vin: str) -> bool:
    return vin_problem(vin) is None
