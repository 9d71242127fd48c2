"""When the database goes away the app says what to do, and comes back by itself when it returns."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from tests.e2e.conftest import serve_app

pytestmark = pytest.mark.e2e


class TcpProxy:
    """A loopback TCP relay to the database that the test can cut and restore."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = 0
        self._server: socket.socket | None = None
        self._links: list[socket.socket] = []

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        if self._server:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._server.close()
            self._server = None
        for link in self._links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
        self._links.clear()


def test_the_app_reports_the_outage_and_recovers_without_a_reload(demo_url, page):
    proxy = TcpProxy(demo_url.port)
    proxy.start()
    try:
        with serve_app(demo_url.set(port=proxy.port)) as base:
            page.goto(base, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=60_000)

            proxy.cut()
            page.reload(wait_until="domcontentloaded")
            page.get_by_text("Fleetdesk cannot reach its data").wait_for(timeout=30_000)
            assert page.get_by_text("retries by itself").is_visible()
            assert page.locator("[data-testid='stException']").count() == 0

            proxy.start()  # same port again: the database is back
            page.get_by_role("heading", name="Sign in to Fleetdesk").wait_for(timeout=30_000)
            assert page.get_by_text("Fleetdesk cannot reach its data").count() == 0
    finally:
        proxy.cut()
