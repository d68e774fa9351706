"""Test helpers shared by every suite: threads that report their failures, waiting on a condition,
a clock the test moves, a service (a redis-server) started and stopped around a block, and a TCP
proxy that can delay or black-hole a connection (for Redis fault tests)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def run_threads(fn: Callable[[int], Any], n: int, timeout: float = 30.0) -> list[Any]:
    """Run ``fn(i)`` for i in range(n) in n threads started together; return their results in
    order. A thread's exception is re-raised here (pytest would only warn about it), and a thread
    still running after ``timeout`` fails the test."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = fn(i)
        except BaseException as exc:  # re-raised in the test below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    alive = sum(t.is_alive() for t in threads)
    assert not alive, f"{alive} of {n} threads still running after {timeout} s"
    return results


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class TcpProxy:
    """A loopback TCP proxy in front of ``(host, port)``.

    ``blackhole()`` makes every connection open now or later silently swallow what passes in both
    directions (the TCP session stays open: a NAT or load-balancer idle timeout, a half-open
    link); ``blackhole(match)`` only those connections for which ``match(conn_index)`` is true.
    ``delay(seconds)`` holds every chunk that long before forwarding it. ``heal()`` restores both.
    ``accept_only`` (set before the first connection) accepts and never answers.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._pairs: list[tuple[int, socket.socket, socket.socket]] = []
        self._blackholed: set[int] = set()
        self._blackhole_new = False
        self._delay = 0.0
        self.accept_only = False
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- controls
    def blackhole(self, match: Callable[[int], bool] | None = None) -> None:
        with self._lock:
            for index, _, _ in self._pairs:
                if match is None or match(index):
                    self._blackholed.add(index)
            if match is None:
                self._blackhole_new = True

    def blackhole_client_port(self, port: int) -> None:
        """Black-hole the one connection whose client side is ``port`` (e.g. a listener socket)."""
        with self._lock:
            for index, client, _ in self._pairs:
                try:
                    peer = client.getpeername()[1]
                except OSError:
                    continue
                if peer == port:
                    self._blackholed.add(index)
                    return
        raise AssertionError(f"no proxied connection from port {port}")

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def heal(self) -> None:
        with self._lock:
            self._blackholed.clear()
            self._blackhole_new = False
        self._delay = 0.0

    def close_all(self) -> None:
        """Drop every proxied connection (both sides see a reset/EOF)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for _, a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.close_all()
        self._thread.join(5)

    # ----------------------------------------------------------------- machinery
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.accept_only:
                with self._lock:
                    self._pairs.append((-1, client, client))
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                index = self.connections
                self.connections += 1
                self._pairs.append((index, client, upstream))
                if self._blackhole_new:
                    self._blackholed.add(index)
            threading.Thread(target=self._pump, args=(index, client, upstream), daemon=True).start()

    def _pump(self, index: int, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    if index in self._blackholed:
                        continue  # swallowed: the peer never hears of it
                    if self._delay:
                        time.sleep(self._delay)
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()


@contextlib.contextmanager
def started(service: T) -> Iterator[T]:
    """``service.start()``, then ``service.stop()`` when the block ends, also if the start failed
    midway (a redis-server, aicache.bench.topologies' Sentinel or Cluster setups)."""
    try:
        service.start()
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.stop()


@contextlib.contextmanager
def pooled_connection(cache) -> Iterator[Any]:
    """A connection redis-py really makes for ``cache`` (connected, so its socket carries the
    timeouts), returned to the pool afterwards: what a cache call will use, not what was asked."""
    pool = cache.redis.connection_pool
    connection = pool.get_connection()
    try:
        yield connection
    finally:
        pool.release(connection)


def write_and_settle(cache, key: str, write: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run ``write`` (a write of ``key``, a small-tier entry, in a cache with a live listener) and
    wait until the write's own invalidation message has been applied here: the key's version moves
    once before the SET, once after it, and once for the message, in whatever order they come."""
    epoch, version = cache.coherence.token(key)
    result = write()

    def settled() -> bool:
        now_epoch, now_version = cache.coherence.token(key)
        return now_epoch != epoch or now_version >= version + 3

    wait_for(settled, timeout, what="the write's own invalidation message")
    return result


class FakeClock:
    """Stands in for a module's ``time``: ``time()`` and ``monotonic()`` return what the test set
    (``now``); everything else is the real ``time`` module's."""

    def __init__(self, now: float, wall_offset: float = 0.0) -> None:
        self.now = now
        self.wall_offset = wall_offset

    def time(self) -> float:
        return self.now + self.wall_offset

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class FakeBroker:
    """A ``CeleryFlusher``'s ``send`` with a worker behind it: each payload it takes is ingested at
    once, on this thread (the ``ingest_batch`` task's body), so the database holds exactly what a
    worker would write. ``up = False`` refuses publishes as an unreachable broker does."""

    def __init__(self) -> None:
        self.up = True
        self.delivered: list[dict] = []

    def __call__(self, payload: dict) -> None:
        from aicache.monitoring.ingest import ingest

        if not self.up:
            raise ConnectionError("broker down")
        self.delivered.append(payload)
        ingest(payload)


def recorded_lookups(cache, monkeypatch) -> tuple[list[tuple[str, float]], list[tuple[float, int, int]]]:
    """What ``cache`` reports to its monitor from now on: every lookup as (source, duration), every
    saving as (compute seconds, prompt tokens, completion tokens). Reports still reach the monitor."""
    lookups: list[tuple[str, float]] = []
    savings: list[tuple[float, int, int]] = []
    monitor = cache.monitor
    lookup, saving = monitor.record_lookup, monitor.record_saving

    def record_lookup(operation, tier, source, duration, *rest):
        lookups.append((source, duration))
        return lookup(operation, tier, source, duration, *rest)

    def record_saving(operation, model, compute_seconds, prompt_tokens, completion_tokens, *rest):
        savings.append((compute_seconds, prompt_tokens, completion_tokens))
        return saving(operation, model, compute_seconds, prompt_tokens, completion_tokens, *rest)

    monkeypatch.setattr(monitor, "record_lookup", record_lookup)
    monkeypatch.setattr(monitor, "record_saving", record_saving)
    return lookups, savings


def counted_errors(cache, monkeypatch) -> list[tuple[str, str]]:
    """Every fault ``cache`` counts from now on, as (kind, what failed); still counted as usual."""
    counted: list[tuple[str, str]] = []
    st = cache._state
    count_error = st.count_error

    def count(kind: str, action: str = "") -> None:
        counted.append((kind, action))
        count_error(kind, action)

    monkeypatch.setattr(st, "count_error", count)
    return counted
