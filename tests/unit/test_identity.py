"""The identity-verification seam: the in-person check is the only provider, and naming another is an error."""

from __future__ import annotations

import pytest

from services import identity
from services.identity import IdentityProviderNotInstalled, IdentityVerifier, ManualVerification, Outcome


def test_unset_means_the_in_person_check(monkeypatch):
    monkeypatch.delenv("FLEETDESK_IDENTITY_PROVIDER", raising=False)
    verifier = identity.identity_verifier()
    assert isinstance(verifier, ManualVerification)
    assert isinstance(verifier, IdentityVerifier)
    assert verifier.in_person


def test_a_provider_that_is_not_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FLEETDESK_IDENTITY_PROVIDER", "onfido")
    with pytest.raises(IdentityProviderNotInstalled) as caught:
        identity.identity_verifier()
    message = str(caught.value)
    assert "'onfido'" in message and "no such identity verification provider is installed" in message
    assert "unset it" in message


def test_the_in_person_check_sends_nothing_and_stays_pending_until_an_agent_decides():
    verifier = ManualVerification()
    check_id = verifier.start_check(identity.VerificationSubject(12, "Dana", "Driver", None, "GB"), [])
    result = verifier.fetch_result(check_id)
    assert result.outcome is Outcome.PENDING
    assert "in person" in result.reasons[0]


def test_a_registered_provider_can_be_selected(monkeypatch):
    class Stub:
        name, in_person = "stub", False

        def start_check(self, subject, documents):
            return "c1"

        def fetch_result(self, check_id):
            return identity.VerificationResult(check_id, Outcome.VERIFIED)

    monkeypatch.setitem(identity._PROVIDERS, "stub", Stub)
    monkeypatch.setenv("FLEETDESK_IDENTITY_PROVIDER", "Stub")
    assert identity.identity_verifier().name == "stub"
