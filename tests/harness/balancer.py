"""A small TCP load balancer in front of operator replicas, standing in for the webhook Service.

The API server calls one webhook URL; in a cluster that is a Service whose endpoints are the replicas
that pass their readiness probe. Out of a cluster this plays that part: it probes every backend's
``/readyz`` every ``probe_seconds`` and hands each new connection to the next ready backend, round
robin, forwarding bytes both ways untouched (TLS passes through: the replicas share one certificate).

One thing it does that a Service does not: when a backend refuses the connection (its process was
killed since the last probe) it dials the next ready one, since nothing was sent yet. A Service's
endpoint lingers until the kubelet notices the dead container; ``redials`` counts the connections
that would have met a killed replica there. ``unserved`` counts connections no ready backend took:
what "no endpoints available" is.

    with Balancer({"a": ("127.0.0.1", 9443, "http://127.0.0.1:8081/readyz")}) as lb:
        lb.url                               # https://127.0.0.1:<port>, for --webhook-url
        lb.set_backend("b", (...))           # add or replace a backend; lb.remove_backend("a")
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Any

import requests

Backend = tuple[str, int, str]
"""host, port, readiness URL."""


class Balancer:
    def __init__(self, backends: dict[str, Backend] | None = None, probe_seconds: float = 0.5) -> None:
        self.probe_seconds = probe_seconds
        self._backends: dict[str, Backend] = dict(backends or {})
        self._ready: set[str] = set()
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self.connections = self.redials = self.unserved = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._probe, daemon=True)]

    def __enter__(self) -> Balancer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stopped.set()
        self._listener.close()

    def set_backend(self, name: str, backend: Backend) -> None:
        with self._lock:
            self._backends[name] = backend

    def remove_backend(self, name: str) -> None:
        with self._lock:
            self._backends.pop(name, None)
            self._ready.discard(name)

    def ready(self) -> list[str]:
        with self._lock:
            return sorted(self._ready)

    def _probe(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                backends = dict(self._backends)
            for name, (_, _, readiness) in backends.items():
                try:
                    ok = requests.get(readiness, timeout=1).ok
                except requests.RequestException:
                    ok = False
                with self._lock:
                    (self._ready.add if ok and name in self._backends else self._ready.discard)(name)
            self._stopped.wait(self.probe_seconds)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _dial(self) -> socket.socket | None:
        """A connection to a ready backend, trying each at most once, starting with the next in turn."""
        with self._lock:
            ready = sorted(self._ready)
            candidates = [self._backends[n] for n in ready]
        start = next(self._turn)
        for i in range(len(candidates)):
            host, port, _ = candidates[(start + i) % len(candidates)]
            try:
                return socket.create_connection((host, port), timeout=2)
            except OSError:
                with self._lock:
                    self.redials += 1
        return None

    def _serve(self, client: socket.socket) -> None:
        upstream = self._dial()
        if upstream is None:
            with self._lock:
                self.unserved += 1
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until either side closes, then close both (a half-closed webhook call is a dead one)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for side in (source, sink):
        with contextlib.suppress(OSError):
            side.shutdown(socket.SHUT_RDWR)
        side.close()
