"""The local Stripe stand-in (localstripe) as a subprocess: start, stop, status, and our webhook registered."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from db.config import PROJECT_ROOT, fleetdesk_home

DEFAULT_PORT = 8420
WEBHOOK_ID = "fleetdesk"
WEBHOOK_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded",
                  "charge.dispute.created", "charge.dispute.closed")


def local_port() -> int:
    return int(os.environ.get("STRIPE_LOCAL_PORT", str(DEFAULT_PORT)))


def webhook_url() -> str:
    """Where the gateway delivers events: our API (FLEETDESK_API_URL, default http://127.0.0.1:8000)."""
    base = os.environ.get("FLEETDESK_API_URL", "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/api/v1/payments/webhook"


@dataclass(frozen=True)
class LocalStripe:
    port: int
    state_file: Path
    log_file: Path
    pid_file: Path

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def for_project(cls, port: int | None = None) -> LocalStripe:
        home = fleetdesk_home()
        return cls(port or local_port(), home / "localstripe.pickle", home / "localstripe.log",
                   home / "localstripe.pid")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited: reap it
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, PermissionError):
        return False
    except (FileNotFoundError, IndexError):
        return True
    return state != "Z"


def _pid(server: LocalStripe) -> int | None:
    try:
        pid = int(server.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def start(server: LocalStripe, *, from_scratch: bool = False, wait_s: float = 20.0) -> subprocess.Popen | None:
    """Start localstripe unless ours is already up; returns the new process (None when it was running)."""
    if _pid(server) and _answers(server.port):
        return None
    if _answers(server.port):
        raise RuntimeError(f"port {server.port} is taken by another program; set STRIPE_LOCAL_PORT to a free port")
    server.state_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "app.localstripe_main", "--port", str(server.port),
               "--state", str(server.state_file)] + (["--from-scratch"] if from_scratch else [])
    with server.log_file.open("ab") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + wait_s
    while not _answers(server.port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"localstripe did not start on port {server.port}; see {server.log_file}")
        time.sleep(0.1)
    return process


def stop(server: LocalStripe, *, wait_s: float = 10.0) -> bool:
    """Stop our localstripe (by its recorded pid); False when it was not running."""
    pid = _pid(server)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while _pid(server) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid(server) is not None:
        os.kill(pid, signal.SIGKILL)
    server.pid_file.unlink(missing_ok=True)
    return True


def status(server: LocalStripe) -> str:
    return "up" if _pid(server) and _answers(server.port) else "down"


def register_webhook(api_base: str, url: str, secret: str, events: tuple[str, ...] = WEBHOOK_EVENTS) -> None:
    """Tell localstripe where to send our events (`POST /_config/webhooks/fleetdesk`)."""
    body = json.dumps({"url": url, "secret": secret, "events": list(events)}).encode()
    request = urllib.request.Request(f"{api_base}/_config/webhooks/{WEBHOOK_ID}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        if response.status >= 300:  # pragma: no cover - localstripe answers 200 or raises
            raise RuntimeError(f"localstripe refused the webhook: HTTP {response.status}")
