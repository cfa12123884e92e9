"""Faults between the service and SQS: a TCP proxy that can be told to stop answering (the failure
a dead socket cannot show: a hung server, a black-holed network path), and an HTTP proxy that
counts SQS actions and can fail one of them."""

from __future__ import annotations

import collections
import http.server
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable

import requests


class HangingProxy:
    """Forwards 127.0.0.1:<port> to target while passing. Once hang() is called it holds every
    new connection silently (connections already open are cut so clients must reconnect); once
    mute() is called it still forwards requests but never returns the answers: the server acts,
    the client never hears that it did."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.hanging = threading.Event()
        self.muted = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hanging.set()
        self._cut_open_connections()

    def _cut_open_connections(self) -> None:
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def mute(self) -> None:
        self.muted.set()
        self._cut_open_connections()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.hanging.is_set():
                with self._lock:
                    self._open.append(client)  # held open, never answered
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()  # the target is down: the client sees its connection closed
                continue
            with self._lock:
                self._open.extend((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink, sink is client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, is_answer: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (is_answer and self.muted.is_set()):
                    sink.sendall(data)
        except OSError:
            pass
        if is_answer and self.muted.is_set():
            return  # a lost answer: the client keeps waiting on an open connection
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SqsActionProxy:
    """An HTTP proxy in front of an SQS-compatible server that counts the API actions passing
    through and can make one action fail after it has succeeded N times (a 500 in SQS's JSON error
    shape, as an AWS outage answers): how a test shows how many calls a publish took, and an
    outage that begins part-way through a request of ours. It can also refuse some entries of a
    SendMessageBatch, as SQS does (the call succeeds and lists them under Failed), and it records
    how many entries each SendMessageBatch carried."""

    def __init__(self, target_url: str):
        self.target_url = target_url.rstrip("/")
        self.calls: collections.Counter[str] = collections.Counter()
        self.batch_sizes: list[int] = []
        self._allowed: dict[str, int] = {}
        self._refuses_entry: Callable[[str], bool] = lambda body: False
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                action = proxy._action(self.headers, body)
                if not proxy._passes(action):
                    status, content_type = 500, "application/x-amz-json-1.0"
                    content = json.dumps({"__type": "InternalError", "message": f"{action} failed (injected)"}).encode()
                elif action == "SendMessageBatch":
                    status, content, content_type = proxy._send_batch(self.path, self.headers, body)
                else:
                    status, content, content_type = proxy._forward(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self, action: str, after: int = 0) -> None:
        """Let `after` more calls of this action through, then fail every one."""
        with self._lock:
            self._allowed[action] = self.calls[action] + after

    def refuse_entries(self, refuses: Callable[[str], bool]) -> None:
        """From now on, SendMessageBatch entries whose MessageBody refuses(body) are not passed on
        and come back under Failed (SQS's InternalError, not the sender's fault)."""
        self._refuses_entry = refuses

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _passes(self, action: str) -> bool:
        with self._lock:
            self.calls[action] += 1
            return action not in self._allowed or self.calls[action] <= self._allowed[action]

    def _forward(self, path: str, headers, body: bytes) -> tuple[int, bytes, str]:
        upstream = requests.post(
            self.target_url + path,
            data=body,
            headers={k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")},
            timeout=30,
        )
        return upstream.status_code, upstream.content, upstream.headers.get("Content-Type", "")

    def _send_batch(self, path: str, headers, body: bytes) -> tuple[int, bytes, str]:
        # botocore signs the request, but SQS-compatible test servers do not check signatures, so
        # a rewritten body passes.
        request = json.loads(body)
        entries = request["Entries"]
        with self._lock:
            self.batch_sizes.append(len(entries))
        refused = [entry for entry in entries if self._refuses_entry(entry["MessageBody"])]
        passed = [entry for entry in entries if entry not in refused]
        answer = {"Successful": [], "Failed": []}
        if passed:
            status, content, content_type = self._forward(path, headers, json.dumps({**request, "Entries": passed}).encode())
            if status != 200:
                return status, content, content_type
            answer = {"Successful": [], "Failed": [], **json.loads(content)}
        answer["Failed"] += [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "refused (injected)"}
            for entry in refused
        ]
        return 200, json.dumps(answer).encode(), "application/x-amz-json-1.0"

    @staticmethod
    def _action(headers, body: bytes) -> str:
        # botocore speaks SQS's JSON protocol (X-Amz-Target); older clients the query protocol.
        target = headers.get("X-Amz-Target", "")
        if target:
            return target.rpartition(".")[2]
        return urllib.parse.parse_qs(body.decode()).get("Action", [""])[0]
