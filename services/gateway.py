"""The payment gateway: an interface of plain values, and its Stripe implementation (the only user of `stripe`).

Card data never passes through here in production: a client confirms with Stripe.js and we only ever see Stripe
ids. `STRIPE_API_BASE` points the SDK at a Stripe-compatible server (localstripe in the demo and the tests); unset,
it talks to real Stripe with `STRIPE_SECRET_KEY`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

import stripe

from services.errors import Conflict, FleetdeskError, InvalidInput

log = logging.getLogger(__name__)

LOCAL_SECRET_KEY = "sk_test_fleetdesk"
LOCAL_WEBHOOK_SECRET = "whsec_fleetdesk_local"
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                     "VND", "VUV", "XAF", "XOF", "XPF"})
UNAVAILABLE = "The payment service did not answer; nothing was charged twice — try again"


class GatewayUnavailable(FleetdeskError):
    """The gateway could not be reached or did not answer in time; a retry with the same key is safe."""


class PaymentDeclined(Conflict):
    """The card was declined; the message is the gateway's reason, for the agent to read out."""

    def __init__(self, message: str, *, intent_id: str | None = None):
        super().__init__(message)
        self.intent_id = intent_id


class IdempotencyKeyReused(FleetdeskError):
    """The gateway already used this idempotency key for a different request."""


class GatewayNotConfigured(FleetdeskError):
    """No keys for the gateway."""


class InvalidSignature(InvalidInput):
    """A webhook whose signature does not verify with our secret."""


# --- plain results --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IntentRequest:
    amount: Decimal
    currency: str
    idempotency_key: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    payment_method_id: str | None = None
    confirm: bool = False
    capture_manually: bool = False  # a hold (deposit): captured or released later


@dataclass(frozen=True)
class IntentResult:
    intent_id: str
    status: str  # Stripe's: requires_payment_method, requires_confirmation, requires_action, processing,
    #              requires_capture, succeeded, canceled
    amount: Decimal
    currency: str
    client_secret: str | None = None
    amount_captured: Decimal = Decimal("0")
    amount_refunded: Decimal = Decimal("0")
    charge_id: str | None = None
    failure_reason: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    reused: bool = False  # an earlier request with the same idempotency key made this intent

    @property
    def net_received(self) -> Decimal:
        return self.amount_captured - self.amount_refunded


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: Decimal
    currency: str
    status: str


class PaymentGateway(Protocol):
    """What the payment services need from a gateway; amounts are Decimals in major units."""

    def create_intent(self, request: IntentRequest) -> IntentResult: ...

    def retrieve_intent(self, intent_id: str) -> IntentResult: ...

    def capture_intent(self, intent_id: str, amount: Decimal, *, idempotency_key: str) -> IntentResult: ...

    def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> IntentResult: ...

    def refund(self, intent_id: str, amount: Decimal, currency: str, *, idempotency_key: str,
               metadata: Mapping[str, str]) -> RefundResult: ...

    def list_intents(self, *, since: datetime | None = None) -> Iterator[IntentResult]: ...

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]: ...


# --- money ------------------------------------------------------------------------------------------------------------

def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal major units → the integer minor units Stripe wants; refuses fractions of a minor unit."""
    exponent = 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2
    scaled = Decimal(amount).scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{amount} {currency.upper()} has more decimals than the currency allows.")
    return int(scaled)


def from_minor(amount: int | None, currency: str) -> Decimal:
    exponent = 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2
    return Decimal(int(amount or 0)).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


# --- configuration ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayConfig:
    secret_key: str
    api_base: str | None  # None: real Stripe
    webhook_secret: str
    timeout_s: float = 20.0
    max_network_retries: int = 2

    @property
    def local(self) -> bool:
        return self.api_base is not None

    @classmethod
    def from_environment(cls) -> GatewayConfig:
        api_base = os.environ.get("STRIPE_API_BASE") or None
        secret_key = os.environ.get("STRIPE_SECRET_KEY") or (LOCAL_SECRET_KEY if api_base else "")
        webhook_secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or (LOCAL_WEBHOOK_SECRET if api_base else "")
        timeout = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))
        # localstripe ignores Idempotency-Key, so the SDK's own blind retries could charge twice there; we retry
        # ourselves (after looking the key up) instead. Real Stripe honours the key, so its retries are safe.
        retries = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "0" if api_base else "2"))
        return cls(secret_key, api_base.rstrip("/") if api_base else None, webhook_secret, timeout, retries)


class _NoCardDetailsInLogs(logging.Filter):
    """The SDK logs request and response bodies at debug level; those may hold what a test card was made of."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "Post details" not in message and "API response body" not in message


logging.getLogger("stripe").addFilter(_NoCardDetailsInLogs())


# --- Stripe -------------------------------------------------------------------------------------------------------

def _plain(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


class StripeGateway:
    """PaymentGateway over the official SDK; network faults and declines become domain errors."""

    def __init__(self, config: GatewayConfig):
        if not config.secret_key:
            raise GatewayNotConfigured("Payments are not configured: set STRIPE_SECRET_KEY (real Stripe), or "
                                       "STRIPE_API_BASE=http://127.0.0.1:8420 for the local stand-in started by "
                                       "`fleetdesk payments server start`.")
        self.config = config
        options: dict[str, Any] = {
            "max_network_retries": config.max_network_retries,
            "http_client": stripe.RequestsClient(timeout=config.timeout_s),
        }
        if config.api_base:
            options["base_addresses"] = {"api": config.api_base}
        self._client = stripe.StripeClient(config.secret_key, **options)

    # -- calls, with faults translated

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.CardError as exc:
            intent = getattr(exc.error, "payment_intent", None) if exc.error else None
            raise PaymentDeclined(self._decline_message(exc), intent_id=getattr(intent, "id", None)) from None
        except stripe.IdempotencyError:
            raise IdempotencyKeyReused("The payment service already used this key for another request.") from None
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            log.warning("payment gateway unreachable during %s: %s", what, exc.__class__.__name__)
            raise GatewayUnavailable(UNAVAILABLE) from None
        except stripe.APIError as exc:  # Stripe's own 5xx: the request may or may not have happened
            log.warning("payment gateway error during %s: %s", what, exc.http_status)
            raise GatewayUnavailable(UNAVAILABLE) from None
        except stripe.AuthenticationError:
            raise GatewayNotConfigured("The payment service refused our key; check STRIPE_SECRET_KEY.") from None
        except stripe.InvalidRequestError as exc:
            raise InvalidInput(f"The payment service refused the request: {exc.user_message or exc}") from None

    @staticmethod
    def _decline_message(exc: stripe.CardError) -> str:
        message = exc.user_message or (exc.error.message if exc.error else None) or "The card was declined."
        return f"{message} Ask for another card, or take the payment in cash."

    # -- intents

    def create_intent(self, request: IntentRequest) -> IntentResult:
        if self.config.local:
            existing = self._find_intent_by_key(request.idempotency_key)
            if existing is not None:
                return existing
        params: dict[str, Any] = {
            "amount": to_minor(request.amount, request.currency),
            "currency": request.currency.lower(),
            "metadata": {**request.metadata, "fleetdesk_key": request.idempotency_key},
            "payment_method_types": ["card"],
        }
        if request.capture_manually:
            params["capture_method"] = "manual"
        if request.payment_method_id:
            params["payment_method"] = request.payment_method_id
        if request.confirm:
            params["confirm"] = True
        options = {"idempotency_key": request.idempotency_key}
        intent = self._call("create", self._client.v1.payment_intents.create, params=params, options=options)
        return self._result(intent)

    def _find_intent_by_key(self, key: str) -> IntentResult | None:
        """localstripe has no idempotency keys: find what an earlier request with this key made (metadata)."""
        page = self._call("look-up", self._client.v1.payment_intents.list, params={"limit": 100})
        for intent in page.auto_paging_iter():
            if _plain(intent).get("metadata", {}).get("fleetdesk_key") == key:
                result = self._result(self._retrieve(intent.id))
                return IntentResult(**{**result.__dict__, "reused": True})
        return None

    def _retrieve(self, intent_id: str):
        return self._call("retrieve", self._client.v1.payment_intents.retrieve, intent_id,
                          params={"expand": ["latest_charge"]})

    def retrieve_intent(self, intent_id: str) -> IntentResult:
        return self._result(self._retrieve(intent_id))

    def capture_intent(self, intent_id: str, amount: Decimal, *, idempotency_key: str) -> IntentResult:
        current = self.retrieve_intent(intent_id)
        if current.status != "requires_capture":
            return current  # captured already (a retry after a lost answer)
        params = {"amount_to_capture": to_minor(amount, current.currency)}
        self._call("capture", self._client.v1.payment_intents.capture, intent_id, params=params,
                   options={"idempotency_key": idempotency_key})
        return self.retrieve_intent(intent_id)

    def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        current = self.retrieve_intent(intent_id)
        if current.status == "canceled":
            return current
        self._call("cancel", self._client.v1.payment_intents.cancel, intent_id,
                   options={"idempotency_key": idempotency_key})
        return self.retrieve_intent(intent_id)

    def refund(self, intent_id: str, amount: Decimal, currency: str, *, idempotency_key: str,
               metadata: Mapping[str, str]) -> RefundResult:
        if self.config.local:
            page = self._call("look-up", self._client.v1.refunds.list,
                              params={"payment_intent": intent_id, "limit": 100})
            for refund in page.auto_paging_iter():
                if (_plain(refund).get("metadata") or {}).get("fleetdesk_key") == idempotency_key:
                    return self._refund_result(refund)
        params = {"payment_intent": intent_id, "amount": to_minor(amount, currency),
                  "metadata": {**metadata, "fleetdesk_key": idempotency_key}}
        refund = self._call("refund", self._client.v1.refunds.create, params=params,
                            options={"idempotency_key": idempotency_key})
        return self._refund_result(refund)

    def list_intents(self, *, since: datetime | None = None) -> Iterator[IntentResult]:
        params: dict[str, Any] = {"limit": 100}
        if since is not None and not self.config.local:  # localstripe does not filter lists by date
            params["created"] = {"gte": int(since.timestamp())}
        page = self._call("list", self._client.v1.payment_intents.list, params=params)
        for intent in page.auto_paging_iter():
            result = self._result(self._retrieve(intent.id))
            if since is None or (result.created and result.created >= since):
                yield result

    # -- webhooks

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event as plain data, only when its Stripe-Signature verifies with our webhook secret."""
        if not self.config.webhook_secret:
            raise GatewayNotConfigured("STRIPE_WEBHOOK_SECRET is not set; webhooks cannot be verified.")
        try:
            stripe.WebhookSignature.verify_header(payload, signature, self.config.webhook_secret,
                                                  stripe.Webhook.DEFAULT_TOLERANCE)
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError):
            raise InvalidSignature("The webhook signature does not verify; the event was ignored.") from None
        if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
            raise InvalidSignature("The webhook body is not a gateway event; it was ignored.")
        return event

    # -- test mode only

    def create_test_card(self, number: str, exp_month: int, exp_year: int, cvc: str) -> str:
        """A PaymentMethod from raw test card details — test keys only; real clients tokenise in Stripe.js."""
        if not self.config.secret_key.startswith("sk_test_"):
            raise InvalidInput("Raw card details are only accepted with a test key; use Stripe.js in production.")
        params = {"type": "card", "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year,
                                           "cvc": cvc}}
        method = self._call("card", self._client.v1.payment_methods.create, params=params)
        return method.id

    # -- translation

    def _result(self, intent) -> IntentResult:
        data = _plain(intent)
        currency = (data.get("currency") or "").upper()
        charge = data.get("latest_charge")
        charge = charge if isinstance(charge, dict) else {}
        received = data.get("amount_received")
        if received is None:  # localstripe: a capture shows on the charge (a partial one as a refund of the rest)
            received = charge.get("amount", 0) if charge.get("captured") and charge.get("status") == "succeeded" else 0
        error = data.get("last_payment_error") or {}
        created = data.get("created")
        return IntentResult(
            intent_id=data["id"], status=data.get("status") or "", amount=from_minor(data.get("amount"), currency),
            currency=currency, client_secret=data.get("client_secret"),
            amount_captured=from_minor(received, currency),
            amount_refunded=from_minor(charge.get("amount_refunded"), currency),
            charge_id=charge.get("id") or (data.get("latest_charge") if isinstance(data.get("latest_charge"), str)
                                           else None),
            failure_reason=error.get("message"), metadata=dict(data.get("metadata") or {}),
            created=datetime.fromtimestamp(created, UTC) if created else None,
        )

    @staticmethod
    def _refund_result(refund) -> RefundResult:
        data = _plain(refund)
        currency = (data.get("currency") or "").upper()
        return RefundResult(data["id"], from_minor(data.get("amount"), currency), currency, data.get("status") or "")


@lru_cache(maxsize=8)
def _gateway_for(config: GatewayConfig) -> StripeGateway:
    return StripeGateway(config)


def default_gateway() -> StripeGateway:
    """The gateway the environment names (one client per configuration, shared)."""
    return _gateway_for(GatewayConfig.from_environment())
