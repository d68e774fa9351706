"""Memory-tier coherence on Redis Cluster: client tracking is per node, so track every primary.

::

    ClusterWatch (the cache's Listener thread)
      every PROBE seconds (or at once when a command met an unproven node):
      CLUSTER NODES --changed?--> clear the tier, retire every node listener, start one per master
                                  of the new map, slotless masters included (a node just added)
      node listener (aicache.listener.Listener on that primary's own connections):
        SUBSCRIBE + CLIENT TRACKING BCAST PREFIX {prefix}: on that node; probes named with a hash
        tag of a slot that node owns, so each probe's message travels that node's path
    the tier is usable until the earliest proof of all primaries; any node's lapse clears it
    every command the shared client sends (aicache.cluster.Cluster.get_redis_connection) names
    its node: a node that is not a proven primary of the followed map (a slot moved to a node
    just added, a MOVED or ASK redirect the map does not know yet) clears the tier at once, so
    nothing read from it is ever filled, and wakes the watch to follow the new map

Why clear on every topology change: a slot that moves, a primary that fails over or a node that
is replaced may have taken writes whose invalidation messages went to a connection we did not
have; what happened there cannot be known, so the tier forgets everything and is bypassed until
every primary of the new map has proven its path again (tests/topologies/test_cluster.py:
``test_entries_spread_over_every_primary_and_each_primary_is_tracked``,
``test_slot_migration_during_reads_and_invalidations``,
``test_a_primary_killed_fails_over_and_the_listener_follows``,
``test_a_node_added_and_given_a_slot_is_never_served_unheard``).
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


View = tuple[Topology, frozenset[tuple[str, int]]]  # the slot map, and masters without slots


def parse_nodes(text: str) -> View:
    """``CLUSTER NODES`` as (slot ranges of each master, masters that own no slot): a node just
    added by ``redis-cli --cluster add-node`` is a master without slots until a slot moves to it."""
    ranges: list[tuple[int, int, str, int]] = []
    slotless: set[tuple[str, int]] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        if "master" not in flags or flags & {"handshake", "noaddr"}:
            continue
        address = fields[1].split("@", 1)[0].split(",", 1)[0]
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or int(port) == 0:
            continue
        node = (host, int(port))
        owned = []
        for slot in fields[8:]:
            if slot.startswith("["):
                continue  # a migration marker: the slot is still its owner's
            first, _, last = slot.partition("-")
            owned.append((int(first), int(last or first), *node))
        if owned:
            ranges.extend(owned)
        elif "fail" not in flags:
            slotless.add(node)
    return tuple(sorted(ranges)), frozenset(slotless)


def cluster_view(client: Any) -> View:
    """Every master of the cluster as one node sees it (``CLUSTER NODES``)."""
    node = client.get_random_node()
    text = node.redis_connection.execute_command("CLUSTER", "NODES")
    return parse_nodes(text.decode() if isinstance(text, bytes) else str(text))


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
        self.topology: View | None = None
        self.changes = 0
        # Primaries of the followed map whose listeners prove their path (replaced, never mutated:
        # read without the lock on every command).
        self.proving: frozenset[tuple[str, int]] = frozenset()
        self.wakeup = threading.Event()
        self.unproven_commands = 0  # commands that met a node outside ``proving`` (tier cleared)
        register = getattr(client, "watch_nodes", None)
        if register is not None:
            register(self)

    def using(self, host: str, port: int) -> None:
        """The shared client is about to send a command to ``host:port``. A node outside the
        proven map may hold writes no listener hears: forget the tier (so a read taking a token
        before this command fills nothing) and follow the cluster's map now."""
        if (host, port) in self.proving:
            return
        self.unproven_commands += 1
        self.tier.clear()
        self.wakeup.set()

    # ------------------------------------------------------------------ node callbacks
    def _current(self, view: NodeTier) -> bool:
        return self.nodes.get(view.node) is view.owner

    def node_proven(self, view: NodeTier, until: float) -> None:
        with self.lock:
            if not self._current(view):
                return  # a retired listener's proof is about a map we no longer trust
            self.proofs[view.node] = until
            if self.proving and set(self.proofs) >= self.proving:
                self.tier.set_proven(min(self.proofs[node] for node in self.proving))
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
            self.wakeup.clear()
            try:
                seen = cluster_view(self.client)
            except (RedisError, OSError, AttributeError, IndexError, ValueError) as exc:
                logger.debug("aicache: cluster topology unavailable (%s)", exc)
                seen = None
            if seen is not None and seen != self.topology:
                self._follow(seen)
            self.wakeup.wait(listener.probe_seconds)
        unregister = getattr(self.client, "unwatch_nodes", None)
        if unregister is not None:
            unregister(self)
        with self.lock:
            retired, self.nodes = list(self.nodes.values()), {}
        for node_listener in retired:
            node_listener.stop()

    def _follow(self, seen: View) -> None:
        """A new map: forget the tier, listen on every master of the new map (a master without
        slots too: tracking is on before a slot moves to it; it proves nothing, holding no key)."""
        from aicache.listener import Listener

        listener = self.listener
        slot_map, slotless = seen
        ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for start, end, host, port in slot_map:
            ranges.setdefault((host, port), []).append((start, end))
        with self.lock:
            retired, self.nodes = list(self.nodes.values()), {}
            self.proving = frozenset()
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
            logger.warning("aicache: Redis Cluster map changed; memory tier cleared")
        self.topology = seen
        template = self._pool_template()
        if template is None:
            self.topology = None  # redis-py has not met any node yet: look again next round
            return
        started = {}
        for node in [*ranges, *sorted(slotless)]:
            view = NodeTier(self, node)
            node_ranges = ranges.get(node)
            node_listener = Listener(
                view,  # type: ignore[arg-type]
                listener.ns,
                listener.probe_seconds,
                listener.liveness_seconds,
                process=f"{{{probe_tag(node_ranges)}}}{listener.process}" if node_ranges else None,
            )
            node_listener.probing = bool(node_ranges)  # a slotless node cannot take a probe key
            view.owner = node_listener
            node_listener.parent = listener
            pool = NodePool(template[0], {**template[1], "host": node[0], "port": node[1]})
            started[node] = (node_listener, pool)
        with self.lock:
            self.nodes = {node: pair[0] for node, pair in started.items()}
            self.proving = frozenset(ranges)
        for node_listener, pool in started.values():
            node_listener.ensure_started(pool)
        listener.connected_once = True

    def _pool_template(self) -> tuple[type, dict[str, Any]] | None:
        """Connection class and kwargs of the client's node connections (password, timeouts)."""
        for redis_node in self.client.get_nodes():
            connection = redis_node.redis_connection
            if connection is not None:
                pool = connection.connection_pool
                return pool.connection_class, dict(pool.connection_kwargs)
        return None


class NodePool:
    """What :meth:`aicache.listener.Listener.ensure_started` needs of a pool: the connection class
    and kwargs for one node (a node redis-py's slot map does not name yet has no pool of its own)."""

    def __init__(self, connection_class: type, connection_kwargs: dict[str, Any]) -> None:
        self.connection_class = connection_class
        self.connection_kwargs = connection_kwargs
