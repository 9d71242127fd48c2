"""Who may drive which type of car for which rental: the rules on values already read, with no database.

`services.customers.check_eligibility` reads the customer and the type and asks these rules; a booking that has
already read both in its own query asks them directly. Each reason is a sentence the desk agent can read out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.customer_fields import age_on
from services.errors import InvalidInput


@dataclass(frozen=True)
class Driver:
    """What the rules need to know about a customer."""

    status: str
    erased_at: datetime | None
    date_of_birth: date | None
    has_licence: bool  # a licence number on file
    licence_expiry: date | None
    identity_status: str


@dataclass(frozen=True)
class CarType:
    """What the rules need to know about a vehicle type."""

    name: str
    min_driver_age: int


def check_rental_dates(pickup: date, dropoff: date) -> None:
    """Raise InvalidInput when the drop-off date comes before the pick-up date."""
    if dropoff < pickup:
        raise InvalidInput(f"The drop-off date {dropoff:%d %b %Y} is before the pick-up date {pickup:%d %b %Y}; "
                           "swap them or pick other dates.")


def ineligibility_reasons(driver: Driver, car_type: CarType, pickup: date, dropoff: date) -> tuple[str, ...]:
    """Every reason this driver may not take this type of car from `pickup` to `dropoff`; empty when they may."""
    if driver.status == "erased":
        erased_on = f" on {driver.erased_at:%d %b %Y}" if driver.erased_at else ""
        return (f"This customer's personal data was erased at their request{erased_on}, so this record cannot be "
                "booked; create a new customer record if they want to rent again.",)
    reasons = []
    if driver.status == "blocked":
        reasons.append("Your account is blocked, so we cannot rent a car to you today; a manager can tell you more.")
    elif driver.status != "active":
        reasons.append("Your account is disabled, so we cannot rent a car to you today; a manager can tell you more.")
    if driver.date_of_birth is None:
        reasons.append("We do not have your date of birth; we need it to check the minimum driver age.")
    else:
        age = age_on(driver.date_of_birth, pickup)
        if age < car_type.min_driver_age:
            reasons.append(f"You must be at least {car_type.min_driver_age} to drive our {car_type.name} cars; "
                           f"you will be {age} at pick-up on {pickup:%d %b %Y}.")
    if not driver.has_licence or driver.licence_expiry is None:
        reasons.append("We do not have your driving licence on file; we need to see it (number, issuing country and "
                       "expiry date) before you can drive.")
    elif driver.licence_expiry < dropoff:
        reasons.append(f"Your driving licence expires on {driver.licence_expiry:%d %b %Y}, before the drop-off on "
                       f"{dropoff:%d %b %Y}; it must be valid for the whole rental.")
    if driver.identity_status == "rejected":
        reasons.append("Your licence did not pass our identity check, so we cannot rent a car to you with it.")
    return tuple(reasons)
