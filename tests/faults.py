"""A TCP proxy that can be told to stop answering: the failure a dead socket cannot show, a peer
that accepts connections and then says nothing (a hung server, a black-holed network path)."""

from __future__ import annotations

import socket
import threading


class HangingProxy:
    """Forwards 127.0.0.1:<port> to target while passing; holds every new connection silently
    once hang() is called (connections already open are cut so clients must reconnect)."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.hanging = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self.hanging.set()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

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
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open.extend((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
