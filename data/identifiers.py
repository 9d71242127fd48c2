"""Identifiers that look and check like real ones: VINs, UK number plates and booking references."""

from __future__ import annotations

from datetime import date

import numpy as np

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
# ISO 3779 / 49 CFR 565: the value of each character and the weight of each position in the check-digit sum.
_VIN_VALUES = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
# Position 10 names the model year in a 30-year cycle that started with A for 1980 (I, O, Q, U, Z and 0 unused).
_MODEL_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"

# Letters of the random part of a plate: no I, Q or Z.
PLATE_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXY"
# First letter of the memory tag: the DVLA region the car was first registered in, weighted for the South East.
_PLATE_REGIONS = {"L": 30, "R": 12, "G": 12, "H": 10, "E": 8, "K": 8, "O": 6, "W": 6, "B": 5, "A": 3}

_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O or U


def vin_check_digit(vin: str) -> str:
    """The check digit (position 9) of a 17-character VIN: '0'-'9' or 'X' for 10."""
    total = sum(_VIN_VALUES[char] * weight for char, weight in zip(vin.upper(), _VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: str) -> bool:
    return (
        len(vin) == 17
        and all(char in VIN_ALPHABET for char in vin)
        and vin[8] == vin_check_digit(vin)
    )


def model_year_code(year: int) -> str:
    return _MODEL_YEAR_CODES[(year - 1980) % 30]


def make_vin(wmi: str, descriptor: str, year: int, plant: str, serial: int) -> str:
    """A VIN from its parts: maker (3), vehicle descriptor (5), model year, plant and a 6-digit serial."""
    body = f"{wmi}{descriptor}0{model_year_code(year)}{plant}{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def random_vins(rng: np.random.Generator, wmis: list[str], years: list[int]) -> list[str]:
    """Distinct VINs, one per (maker, model year); the serial numbers alone are already unique."""
    count = len(wmis)
    alphabet = np.array(list(VIN_ALPHABET))
    descriptors = ["".join(chars) for chars in alphabet[rng.integers(0, len(alphabet), size=(count, 5))]]
    plants = alphabet[rng.integers(0, 23, size=count)]  # letters only
    serials = rng.permutation(900_000)[:count] + 100_000 if count <= 900_000 else np.arange(count)
    return [
        make_vin(wmi, descriptor, year, str(plant), int(serial))
        for wmi, descriptor, year, plant, serial in zip(wmis, descriptors, years, plants, serials, strict=True)
    ]


def plate_age_identifier(registered: date) -> int:
    """The two digits of a plate: the year for March-August, the year + 50 for September-February."""
    if registered.month >= 9:
        return registered.year % 100 + 50
    if registered.month >= 3:
        return registered.year % 100
    return (registered.year - 1) % 100 + 50


def random_plates(rng: np.random.Generator, registered: list[date]) -> list[str]:
    """Distinct current-style UK plates ("LB21 XKD") whose age identifier matches the registration date."""
    count = len(registered)
    regions = np.array(list(_PLATE_REGIONS))
    weights = np.array(list(_PLATE_REGIONS.values()), dtype=float)
    letters = np.array(list(PLATE_LETTERS))
    first = regions[rng.choice(len(regions), size=count, p=weights / weights.sum())]
    second = letters[rng.integers(0, len(letters), size=count)]
    plates: list[str] = []
    taken: set[str] = set()
    for index in range(count):
        prefix = f"{first[index]}{second[index]}{plate_age_identifier(registered[index]):02d} "
        while True:
            plate = prefix + "".join(letters[rng.integers(0, len(letters), size=3)])
            if plate not in taken:
                break
        taken.add(plate)
        plates.append(plate)
    return plates


def booking_references(ids: np.ndarray) -> np.ndarray:
    """'FD' + 6 base-32 characters, a bijection of the booking id (below 2**30), so references never collide."""
    mask = np.uint64((1 << 30) - 1)
    x = ids.astype(np.uint64) & mask
    for _ in range(2):  # multiply by an odd number and xor-shift: both invertible modulo 2**30
        x = (x * np.uint64(0x2F0B3A5)) & mask
        x ^= x >> np.uint64(13)
    pairs = np.array([a + b for a in _REFERENCE_ALPHABET for b in _REFERENCE_ALPHABET])  # 10 bits each
    ten_bits = np.uint64(1023)
    high = pairs[((x >> np.uint64(20)) & ten_bits).astype(np.int64)]
    middle = pairs[((x >> np.uint64(10)) & ten_bits).astype(np.int64)]
    low = pairs[(x & ten_bits).astype(np.int64)]
    return np.char.add(np.char.add(np.char.add("FD", high), middle), low)
