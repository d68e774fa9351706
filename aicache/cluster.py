"""A django-redis client on redis-py's ``RedisCluster`` (django-redis has no Cluster client).

::

    CACHES["ai"] = {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": "redis://10.0.0.1:6379,redis://10.0.0.2:6379",  # any cluster nodes
        "OPTIONS": {"CLIENT_CLASS": "aicache.cluster.ClusterClient"},
    }

The nodes in ``LOCATION`` are only where discovery starts; redis-py follows the slot map (MOVED,
ASK, TRYAGAIN) from there. One ``RedisCluster`` serves every thread of a process (it keeps a
connection pool per node), like django-redis's process-global pools. aicache names everything that
must share a slot with hash tags (:mod:`aicache.namespace`), so its scripts and RENAMEs stay
single-slot; the plain Django API's multi-key calls (``get_many``, ``delete_many``) are split by
slot by redis-py.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django_redis.client import DefaultClient
from redis.backoff import NoBackoff
from redis.cluster import REPLICA, ClusterNode, RedisCluster
from redis.retry import Retry


class Cluster(RedisCluster):
    """``RedisCluster`` whose MGET splits keys by slot (django-redis's ``get_many`` sends one MGET
    of keys that hash anywhere); keys of one slot still go in one MGET. Every command names its
    node to the coherence watches (:mod:`aicache.cluster_coherence`): a node they do not prove
    (a slot just moved to a node just added, a MOVED or ASK redirect) clears their tiers first."""

    _node_watches: tuple[Any, ...] = ()

    def mget(self, keys: Any, *args: Any) -> list[Any]:
        return self.mget_nonatomic(keys, *args)

    def watch_nodes(self, watch: Any) -> None:
        with _lock:
            self._node_watches = (*self._node_watches, watch)

    def unwatch_nodes(self, watch: Any) -> None:
        with _lock:
            self._node_watches = tuple(w for w in self._node_watches if w is not watch)

    def get_redis_connection(self, node: ClusterNode) -> Any:
        # redis-py calls this for the node each command (or pipeline part) is sent to, after a
        # MOVED or an ASK redirect too. A node it holds for a replica gets no key command from
        # aicache (PING or INFO may go to a default node that became one): nothing to fill from.
        if node.server_type != REPLICA:
            for watch in self._node_watches:
                watch.using(node.host, node.port)
        return super().get_redis_connection(node)


_clusters: dict[str, RedisCluster] = {}
_lock = threading.Lock()


def startup_nodes(servers: list[str]) -> tuple[list[ClusterNode], dict[str, Any]]:
    """Cluster nodes and the credentials named by ``redis://[user:password@]host:port`` URLs."""
    nodes = []
    auth: dict[str, Any] = {}
    for server in servers:
        url = urlparse(server.strip())
        if url.scheme not in ("redis", "rediss") or not url.hostname:
            raise ImproperlyConfigured(f"cluster LOCATION entries are redis://host:port URLs, got {server!r}")
        if url.path not in ("", "/", "/0"):
            raise ImproperlyConfigured(f"Redis Cluster has only database 0, got {server!r}")
        nodes.append(ClusterNode(url.hostname, url.port or 6379))
        if url.password:
            auth["password"] = unquote(url.password)
        if url.username:
            auth["username"] = unquote(url.username)
        if url.scheme == "rediss":
            auth["ssl"] = True
    return nodes, auth


def _stable(value: Any) -> Any:
    """``value`` if its repr is a value (str, number, bool, None), else its type's name."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__


def cluster_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """``RedisCluster`` keyword arguments from a cache's OPTIONS, as django-redis's connection
    factory reads them for one node: ``CONNECTION_POOL_KWARGS`` (``max_connections``,
    ``health_check_interval``, ``ssl_*``, ...), then the socket timeouts and ``PASSWORD`` (which,
    as in django-redis, wins over a password in the LOCATION URLs)."""
    kwargs = dict(options.get("CONNECTION_POOL_KWARGS") or {})
    # Fail-open is aicache's job (aicache.guard): one attempt per call, like the single-node pool;
    # MOVED/ASK redirects are followed regardless.
    kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    kwargs["socket_timeout"] = options.get("SOCKET_TIMEOUT")
    kwargs["socket_connect_timeout"] = options.get("SOCKET_CONNECT_TIMEOUT")
    if options.get("PASSWORD"):
        kwargs["password"] = options["PASSWORD"]
    for fixed in ("startup_nodes", "require_full_coverage", "protocol"):
        kwargs.pop(fixed, None)  # aicache's own: the nodes come from LOCATION, RESP2 for tracking
    return kwargs


class ClusterClient(DefaultClient):
    """django-redis's ``DefaultClient`` whose one raw client is a ``RedisCluster``."""

    def get_next_client_index(self, write: bool = True, tried: list[int] | None = None) -> int:
        return 0

    def connect(self, index: int = 0) -> RedisCluster:
        options = self._options
        kwargs = cluster_kwargs(options)
        # Only what shapes the client, by value: options also hold objects whose repr differs per
        # backend instance (a Retry), and Django builds a backend per thread.
        identity = repr((sorted(self._server), sorted((k, _stable(v)) for k, v in kwargs.items())))
        client = _clusters.get(identity)
        if client is None:
            with _lock:
                client = _clusters.get(identity)
                if client is None:
                    nodes, auth = startup_nodes(list(self._server))
                    client = Cluster(
                        startup_nodes=nodes,
                        require_full_coverage=False,
                        protocol=2,
                        **{**auth, **kwargs},
                    )
                    _clusters[identity] = client
        return client

    def disconnect(self, index: int = 0, client: Any = None) -> None:
        """Keep the shared cluster client: its pools belong to every thread of the process."""
