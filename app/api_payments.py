"""`POST /api/v1/payments/webhook`: the gateway's events, verified, then applied once in a unit of work."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api_resources import engine
from db.session import session_scope
from services import payments
from services.gateway import InvalidSignature, default_gateway

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


@router.post("/webhook", include_in_schema=False)
async def payment_webhook(request: Request) -> JSONResponse:
    """Stripe calls this; a bad signature is a 400 and changes nothing, anything else we accept is a 200."""
    payload = await request.body()
    try:
        event = default_gateway().verify_event(payload, request.headers.get("Stripe-Signature"))
    except InvalidSignature as exc:
        log.warning("payment webhook refused: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=400)
    with session_scope(engine()) as session:
        outcome = payments.handle_gateway_event(session, event)
    log.info("payment webhook %s (%s): %s", event["id"], event["type"], outcome)
    return JSONResponse({"received": True, "outcome": outcome})
