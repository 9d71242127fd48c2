"""`fleetdesk api`: serve the REST API (app.api) with uvicorn."""

from __future__ import annotations

import argparse
import os

from app.commands.common import require_migrated, up_target
from services.crypto import check_configuration


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    check_configuration()
    require_migrated(up_target())
    print(f"Fleetdesk API on http://{args.host}:{args.port} (docs at /docs, OpenAPI at /openapi.json)", flush=True)
    uvicorn.run("app.api:app", host=args.host, port=args.port, workers=args.workers,
                log_level=os.environ.get("FLEETDESK_API_LOG_LEVEL", "info"))


def register(subparsers) -> None:
    api = subparsers.add_parser("api", help="serve the REST API (OpenAPI at /openapi.json, docs at /docs)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=int(os.environ.get("FLEETDESK_API_PORT", "8000")))
    api.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    api.set_defaults(func=cmd_api)
