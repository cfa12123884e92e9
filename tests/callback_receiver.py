"""A client's callback endpoint for the tests: a threaded HTTP server on the loopback that keeps
every request it gets and answers as told (ok, an error status, a redirect, too slowly), and can
stop listening altogether (connection refused) and listen again on the same port."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    headers: dict
    body: str
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    def verified_with(self, secret: str) -> dict:
        """The payload, verified as a client would with the Standard Webhooks library."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    location: str = ""


@dataclass
class Receiver:
    port: int = 0
    behaviour: Behaviour = field(default_factory=Behaviour)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with receiver._lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))
                    behaviour = receiver.behaviour
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                self.send_response(behaviour.status)
                if behaviour.location:
                    self.send_header("Location", behaviour.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int = 200, delay: float = 0.0, location: str = "") -> None:
        with self._lock:
            self.behaviour = Behaviour(status, delay, location)

    def events(self, event_type: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r for r in self.received if r.headers.get("webhook-id") and (event_type is None or r.event["type"] == event_type)
            ]
