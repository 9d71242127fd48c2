"""Identity verification: a desk agent checking the licence in person, and the seam for an automatic provider.

Only the in-person check is installed. An automatic provider (Onfido, Jumio and the like) plugs in by implementing
`IdentityVerifier` and registering a factory under a name; FLEETDESK_IDENTITY_PROVIDER then selects it. Nothing here
pretends to talk to a provider that is not there: naming one that is not installed is a start-up error.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from services.actors import Actor
from services.customer_fields import NOTE_MAX_CHARS
from services.customers import Customer, set_identity_status
from services.errors import FleetdeskError, InvalidInput

PROVIDER_VARIABLE = "FLEETDESK_IDENTITY_PROVIDER"


class IdentityProviderNotInstalled(FleetdeskError):
    """FLEETDESK_IDENTITY_PROVIDER names a provider this installation does not have."""


class Outcome(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


@dataclass(frozen=True)
class VerificationSubject:
    """Who is being checked, as a provider needs it; the licence number travels only to the provider."""

    customer_id: int
    first_name: str
    last_name: str
    date_of_birth: date | None
    licence_country: str | None


@dataclass(frozen=True)
class IdentityDocument:
    kind: str  # "driving_licence_front", "driving_licence_back", "selfie", ...
    content: bytes = field(repr=False)
    media_type: str = "image/jpeg"


@dataclass(frozen=True)
class VerificationResult:
    check_id: str
    outcome: Outcome
    reasons: tuple[str, ...] = ()


@runtime_checkable
class IdentityVerifier(Protocol):
    """An identity check: started for a customer with their documents, its result fetched later by check id."""

    name: str
    in_person: bool  # True: a person at the desk decides; False: a remote service does

    def start_check(self, subject: VerificationSubject, documents: Sequence[IdentityDocument]) -> str:
        """Start a check; returns the provider's check id."""
        ...

    def fetch_result(self, check_id: str) -> VerificationResult:
        """The check's state: pending, or verified/rejected with the provider's reasons."""
        ...


class ManualVerification:
    """The desk agent looks at the licence and the person in front of them and records what they saw."""

    name = "manual"
    in_person = True

    def start_check(self, subject: VerificationSubject, documents: Sequence[IdentityDocument]) -> str:
        # nothing is sent anywhere: the "check" is the agent at the desk, identified by the customer
        return f"in-person:{subject.customer_id}"

    def fetch_result(self, check_id: str) -> VerificationResult:
        return VerificationResult(check_id, Outcome.PENDING,
                                  ("Waiting for a desk agent to check the licence in person.",))

    def record(self, session: Session, actor: Actor, customer_id: int, outcome: Outcome | str,
               note: str | None = None) -> Customer:
        """The agent's verdict, recorded with who checked and when."""
        outcome = Outcome(outcome)
        if outcome is Outcome.PENDING:
            raise InvalidInput("An in-person check ends in verified or rejected; pick one.")
        return set_identity_status(session, actor, customer_id, outcome.value, note)


_PROVIDERS: dict[str, Callable[[], IdentityVerifier]] = {"manual": ManualVerification}


def register_provider(name: str, factory: Callable[[], IdentityVerifier]) -> None:
    """Make a provider selectable by FLEETDESK_IDENTITY_PROVIDER=name (called by the provider's package)."""
    _PROVIDERS[name.strip().lower()] = factory


def installed_providers() -> list[str]:
    return sorted(_PROVIDERS)


def identity_verifier() -> IdentityVerifier:
    """The configured verifier: the in-person check unless FLEETDESK_IDENTITY_PROVIDER names an installed one."""
    name = os.environ.get(PROVIDER_VARIABLE, "").strip().lower() or "manual"
    factory = _PROVIDERS.get(name)
    if factory is None:
        raise IdentityProviderNotInstalled(
            f"{PROVIDER_VARIABLE} is {name!r}, but no such identity verification provider is installed "
            f"(installed: {', '.join(installed_providers())}); unset it to have desk agents check licences in "
            "person, or install the provider's package."
        )
    return factory()


def apply_result(session: Session, actor: Actor, customer_id: int, verifier: IdentityVerifier,
                 result: VerificationResult) -> Customer | None:
    """Record a provider's final verdict on the customer (None while it is still pending)."""
    if result.outcome is Outcome.PENDING:
        return None
    note = f"{verifier.name} check {result.check_id}" + (f": {'; '.join(result.reasons)}" if result.reasons else "")
    return set_identity_status(session, actor, customer_id, result.outcome.value, note[:NOTE_MAX_CHARS])
