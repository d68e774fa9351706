"""The coherence listener: one daemon thread per process and cache that carries Redis's
invalidation messages to the :class:`~aicache.coherence.CoherentTier` and proves, end to end, that
they still arrive.

::

    listener connection  --CLIENT ID--> id; SUBSCRIBE __redis__:invalidate {prefix}!events
    tracking connection  --CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX {prefix}:
    any client writes, deletes, expires or evicts {prefix}:... --> message [key, ...] --> evict
    every PROBE seconds: tracking connection SET {prefix}:!live!{process}!{seq} --> its message
        must come back on the listener within LIVENESS seconds, or the tier is cleared and bypassed

Why a probe: a subscription can stop delivering while every socket looks healthy (a NAT or
load-balancer idle timeout, a black-holing link). Pinging proves a connection answers, not that
invalidations reach us. The probe's message travels exactly the path an entry's does, and Redis
delivers in order, so once the message of a probe sent at ``t`` has arrived, every write committed
before ``t`` has been delivered: the tier may be trusted until ``t + LIVENESS``
(test_coherence.py::test_half_open_subscription_*). Any connection error or lapse clears the tier
and reconnects; the tier stays bypassed until a new probe comes back.

Both connections speak RESP2: redis-py 8 defaults to RESP3, where hiredis hands these messages to
push handlers instead of returning them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aicache.coherence import DISCONNECTED, LIVE, STARTING, STOPPED, UNSUPPORTED, CoherentTier
from aicache.guard import Unreachable
from aicache.namespace import Namespace

logger = logging.getLogger("aicache.coherence")

INVALIDATE_CHANNEL = b"__redis__:invalidate"
CLEAR_MESSAGE = b"clear"
WAKE_PREFIX = b"w"
_BACKOFF_MAX = 2.0
# Connection kwargs that belong to redis-py's RESP3 maintenance machinery, not to a RESP2 socket.
_DROP_KWARGS = ("maint_notifications_config", "maint_notifications_pool_handler", "protocol")


class LivenessLapsed(Exception):
    """No probe came back within the liveness bound."""


class TrackingRefused(Exception):
    """Redis refused CLIENT TRACKING (an old server, ACLs): the tier cannot be kept coherent."""


class Listener:
    def __init__(
        self,
        tier: CoherentTier,
        ns: Namespace,
        probe_seconds: float,
        liveness_seconds: float,
        process: str | None = None,
    ) -> None:
        self.tier = tier
        self.ns = ns
        self.probe_seconds = probe_seconds
        self.liveness_seconds = liveness_seconds
        # A cluster node's listener names its probes with a hash tag of a slot that node owns.
        self.process = process or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._probe_prefix = ns.probe_prefix(self.process).encode()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._live = threading.Event()
        self.reconnects = 0
        self.lapses = 0
        self.messages = 0
        self.connected_once = False
        self.sockets: tuple[Any, Any] | None = None  # (listener, tracker) local addresses, for tests
        self.watch: Any = None  # a cluster's per-primary listeners (aicache.cluster_coherence)
        self.parent: Listener | None = None  # a cluster node's listener counts into its cache's too
        # False for a cluster master that owns no slot yet: it cannot take a probe key, so it only
        # carries messages (the watch does not wait for its proof; it restarts it once it has slots).
        self.probing = True

    def ensure_started(self, source: Any) -> None:
        """Start the thread once (lazily, from the first cache call that needs it). ``source`` is
        the cache's redis-py client (or its connection pool); a ``RedisCluster`` gets a listener on
        every primary (:mod:`aicache.cluster_coherence`)."""
        if self._thread is not None or isinstance(source, Unreachable):
            return  # no client yet (a cluster none of whose nodes answered): the next call retries
        with self._start_lock:
            if self._thread is not None:
                return
            from redis.cluster import RedisCluster

            if isinstance(source, RedisCluster):
                from aicache.cluster_coherence import ClusterWatch

                self.watch = ClusterWatch(self, source)
                self._thread = threading.Thread(
                    target=self.watch.run, name=f"aicache-coherence-{self.ns.prefix}", daemon=True
                )
                self._thread.start()
                return
            pool = getattr(source, "connection_pool", source)
            kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _DROP_KWARGS}
            self._thread = threading.Thread(
                target=self._run,
                args=(pool.connection_class, kwargs),
                name=f"aicache-coherence-{self.ns.prefix}",
                daemon=True,
            )
            self._thread.start()

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self.tier.lapse(STOPPED)

    # ------------------------------------------------------------------ the thread
    def _run(self, connection_class: type, kwargs: dict[str, Any]) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            listener = tracker = None
            try:
                listener = connection_class(protocol=2, **kwargs)
                tracker = connection_class(protocol=2, **kwargs)
                self._connect(listener, tracker)
                backoff = 0.05
                self._listen(listener, tracker)
            except TrackingRefused as exc:
                self._live.clear()
                self.tier.lapse(UNSUPPORTED)
                logger.error(
                    "aicache: Redis refused client tracking (%s); the memory tier is disabled for %s:",
                    exc,
                    self.ns.prefix,
                )
                return
            except LivenessLapsed:
                self.lapses += 1
                if self.parent is not None:
                    self.parent.lapses += 1
                self._lost(f"no invalidation probe came back within {self.liveness_seconds:.1f} s")
            except (RedisConnectionError, RedisTimeoutError, OSError, RedisError) as exc:
                self._lost(str(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                for conn in (listener, tracker):
                    if conn is not None:
                        conn.disconnect()

    def _lost(self, why: str) -> None:
        was_live = self.tier.status == LIVE
        self._live.clear()
        if not self._stop.is_set():
            self.tier.lapse(DISCONNECTED)
        if was_live:
            logger.warning("aicache: coherence listener lost (%s); memory tier cleared, reconnecting", why)

    def _connect(self, listener: Any, tracker: Any) -> None:
        listener.connect()
        listener.send_command("CLIENT", "ID")
        client_id = listener.read_response()
        listener.send_command("SUBSCRIBE", INVALIDATE_CHANNEL, self.ns.events)
        listener.read_response()
        listener.read_response()
        tracker.connect()
        tracker.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self.ns.tracking_prefix
        )
        try:
            tracker.read_response()
        except ResponseError as exc:
            raise TrackingRefused(str(exc)) from exc
        self.sockets = (listener._sock.getsockname(), tracker._sock.getsockname())
        if self.connected_once:
            self.reconnects += 1
            if self.parent is not None:
                self.parent.reconnects += 1
        self.connected_once = True
        # Whatever happened while we were not listening is unknown: start from an empty tier,
        # bypassed until the first probe comes back.
        if self.tier.status not in (STARTING, DISCONNECTED):
            self.tier.status = STARTING
        self.tier.clear()

    def _listen(self, listener: Any, tracker: Any) -> None:
        sent: deque[tuple[int, float]] = deque()
        seq = 0
        next_probe = time.monotonic()
        px = max(1, int(self.liveness_seconds * 2000))
        while not self._stop.is_set():
            now = time.monotonic()
            if not self.probing:
                if listener.can_read(timeout=0.25):
                    self._handle(listener.read_response(), sent)
                continue
            if now >= next_probe:
                seq += 1
                tracker.send_command("SET", self.ns.probe(self.process, seq), b"1", "PX", px)
                tracker.read_response()
                sent.append((seq, now))
                next_probe = now + self.probe_seconds
            if sent and now - sent[0][1] > self.liveness_seconds:
                raise LivenessLapsed
            wait = max(0.0, min(next_probe, sent[0][1] + self.liveness_seconds if sent else next_probe) - now)
            if listener.can_read(timeout=min(wait, 0.25)):
                self._handle(listener.read_response(), sent)

    def _handle(self, message: Any, sent: deque[tuple[int, float]]) -> None:
        if not isinstance(message, list) or len(message) != 3 or message[0] != b"message":
            return
        self.messages += 1
        if self.parent is not None:
            self.parent.messages += 1
        channel, payload = message[1], message[2]
        if channel == INVALIDATE_CHANNEL:
            if payload is None:
                self.tier.invalidate(None)
                return
            keys = []
            for raw in payload:
                if raw.startswith(self._probe_prefix):
                    self._proven(int(raw[len(self._probe_prefix) :]), sent)
                elif b"!live!" not in raw:  # another process's probe is none of our business
                    keys.append(raw.decode("utf-8", "replace"))
            if keys:
                self.tier.invalidate(keys)
        elif payload == CLEAR_MESSAGE:
            self.tier.invalidate(None)
        elif isinstance(payload, bytes) and payload.startswith(WAKE_PREFIX):
            self.tier.wake([payload[len(WAKE_PREFIX) :].decode("utf-8", "replace")])

    def _proven(self, seq: int, sent: deque[tuple[int, float]]) -> None:
        sent_at = None
        while sent and sent[0][0] <= seq:
            _, sent_at = sent.popleft()
        if sent_at is None:
            return  # a late message (the probe key expiring): proves nothing new
        self.tier.set_proven(sent_at + self.liveness_seconds)
        self._live.set()
