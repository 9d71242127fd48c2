"""The REST API (FastAPI): health, the /api/v1 routers, and domain errors as JSON answers."""

from __future__ import annotations

from fastapi import FastAPI

from app.api_payments import router as payments_router
from app.api_v1 import add_error_handlers
from app.api_v1 import router as v1_router

DESCRIPTION = """
Fleetdesk's REST API, on the same services and rules as the desk.

Every endpoint except `/healthz` and the payment webhook needs `Authorization: Bearer <token>`; an admin creates a
token with `fleetdesk tokens create --email E` (the token is the last line of its output). Bookings and payments
need a desk agent's or an admin's token. Errors are JSON `{"detail": "..."}`; money is a decimal string with two
places beside its `currency`; times are ISO 8601 with an offset (naive times are refused with 422).
"""

app = FastAPI(title="Fleetdesk API", version="1.0.0", description=DESCRIPTION)
app.include_router(v1_router)
app.include_router(payments_router)
add_error_handlers(app)


@app.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}
