"""Memory-tier coherence on Redis Cluster: client tracking is per node, so track every primary.

::

    ClusterWatch (the cache's Listener thread)
      every PROBE seconds: CLUSTER SLOTS --changed?--> clear the tier, retire every node listener,
                                                       start one per primary of the new map
      node listener (aicache.listener.Listener on that primary's own connections):
        SUBSCRIBE + CLIENT TRACKING BCAST PREFIX {prefix}: on that node; probes named with a hash
        tag of a slot that node owns, so each probe's message travels that node's path
    the tier is usable until the earliest proof of all primaries; any node's lapse clears it

Why clear on every topology change: a slot that moves, a primary that fails over or a node that
is replaced may have taken writes whose invalidation messages went to a connection we did not
have; what happened there cannot be known, so the tier forgets everything and is bypassed until
every primary of the new map has proven its path again (tests/topologies/test_cluster.py:
``test_entries_spread_over_every_primary_and_each_primary_is_tracked``,
``test_slot_migration_during_reads_and_invalidations``,
``test_a_primary_killed_fails_over_and_the_listener_follows``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

from redis.crc import key_slot
from redis.exceptions import RedisError

from aicache.coherence import DISCONNECTED, STARTING, STOPPED

logger = logging.getLogger("aicache.coherence")

Topology = tuple[tuple[int, int, str, int], ...]  # (first slot, last slot, primary host, port)


def topology(client: Any) -> Topology:
    """The slot map as one node answers it (primaries only)."""
    node = client.get_random_node()
    rows = node.redis_connection.execute_command("CLUSTER SLOTS")
    out = []
    for row in rows:
        start, end, primary = row[0], row[1], row[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else primary[0]
        out.append((int(start), int(end), host, int(primary[1])))
    return tuple(sorted(out))


def probe_tag(ranges: list[tuple[int, int]]) -> str:
    """A short hash tag whose slot lies in ``ranges`` (a node's slots)."""
    for i in itertools.count():
        tag = f"n{i}"
        slot = key_slot(tag.encode())
        if any(start <= slot <= end for start, end in ranges):
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


class NodeTier:
    """One primary's view of the shared tier: its proof counts only together with the others'."""

    def __init__(self, watch: ClusterWatch, node: tuple[str, int]) -> None:
        self.watch = watch
        self.node = node
        self.owner: Any = None  # its listener: a retired one's late proof must not count

    @property
    def status(self) -> str:
        return self.watch.tier.status

    @status.setter
    def status(self, value: str) -> None:
        self.watch.node_unproven(self, value)

    def clear(self) -> int:
        return self.watch.tier.clear()

    def invalidate(self, keys: list[str] | None) -> None:
        self.watch.tier.invalidate(keys)

    def wake(self, keys: list[str]) -> None:
        self.watch.tier.wake(keys)

    def set_proven(self, until: float) -> None:
        self.watch.node_proven(self, until)

    def lapse(self, status: str) -> None:
        self.watch.node_lapsed(self, status)


class ClusterWatch:
    def __init__(self, listener: Any, client: Any) -> None:
        self.listener = listener
        self.tier = listener.tier
        self.client = client
        self.nodes: dict[tuple[str, int], Any] = {}
        self.proofs: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        self.topology: Topology | None = None
        self.changes = 0

    # ------------------------------------------------------------------ node callbacks
    def _current(self, view: NodeTier) -> bool:
        return self.nodes.get(view.node) is view.owner

    def node_proven(self, view: NodeTier, until: float) -> None:
        with self.lock:
            if not self._current(view):
                return  # a retired listener's proof is about a map we no longer trust
            self.proofs[view.node] = until
            if len(self.proofs) == len(self.nodes):
                self.tier.set_proven(min(self.proofs.values()))
                self.listener._live.set()

    def node_unproven(self, view: NodeTier, status: str) -> None:
        with self.lock:
            if not self._current(view):
                return
            self.proofs.pop(view.node, None)
            self.tier.usable_until = 0.0
            self.tier.status = status
            self.listener._live.clear()

    def node_lapsed(self, view: NodeTier, status: str) -> None:
        with self.lock:
            if not self._current(view):
                return  # a retired node's listener stopping
            self.proofs.pop(view.node, None)
            self.listener._live.clear()
            if status == STOPPED:
                status = DISCONNECTED
            self.tier.lapse(status)

    # ------------------------------------------------------------------ the thread
    def run(self) -> None:
        listener = self.listener
        while not listener._stop.is_set():
            try:
                seen = topology(self.client)
            except (RedisError, OSError, AttributeError, IndexError) as exc:
                logger.debug("aicache: cluster topology unavailable (%s)", exc)
                seen = None
            if seen is not None and seen != self.topology:
                self._follow(seen)
            listener._stop.wait(listener.probe_seconds)
        with self.lock:
            retired, self.nodes = list(self.nodes.values()), {}
        for node_listener in retired:
            node_listener.stop()

    def _follow(self, seen: Topology) -> None:
        """A new slot map: forget the tier, listen on every primary of the new map."""
        from aicache.listener import Listener

        listener = self.listener
        ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for start, end, host, port in seen:
            ranges.setdefault((host, port), []).append((start, end))
        with self.lock:
            retired, self.nodes = list(self.nodes.values()), {}
            self.proofs.clear()
            self.tier.usable_until = 0.0
            self.tier.status = STARTING
            listener._live.clear()
        self.tier.clear()
        for node_listener in retired:
            node_listener.stop()
        if self.topology is not None:
            self.changes += 1
            listener.reconnects += 1
            logger.warning("aicache: Redis Cluster slot map changed; memory tier cleared")
        self.topology = seen
        started = {}
        for node, node_ranges in ranges.items():
            redis_node = self.client.get_node(host=node[0], port=node[1])
            if redis_node is None or redis_node.redis_connection is None:
                self.topology = None  # redis-py has not met this node yet: look again next round
                continue
            view = NodeTier(self, node)
            node_listener = Listener(
                view,  # type: ignore[arg-type]
                listener.ns,
                listener.probe_seconds,
                listener.liveness_seconds,
                process=f"{{{probe_tag(node_ranges)}}}{listener.process}",
            )
            view.owner = node_listener
            node_listener.parent = listener
            started[node] = (node_listener, redis_node.redis_connection.connection_pool)
        with self.lock:
            self.nodes = {node: pair[0] for node, pair in started.items()}
        for node_listener, pool in started.values():
            node_listener.ensure_started(pool)
        listener.connected_once = True
