"""A TCP proxy that can be told to stop answering: the failure a dead socket cannot show, a peer
that accepts connections and then says nothing (a hung server, a black-holed network path)."""

from __future__ import annotations

import socket
import threading


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
