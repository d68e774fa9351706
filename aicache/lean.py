"""The Redis commands of the hot path (GET, the store script's EVALSHA) without redis-py's
per-command machinery.

redis-py 8 wraps every command in a retry closure, a HIMPORT check, observability recording and a
reconnect check (``Redis._execute_command``), and every pool checkout and release in a lock, a
readiness poll, event dispatch and four connection-count recordings. aicache already turns
redis-py's retries off (a hung Redis must cost one timeout) and keeps its own metrics, so on a
plain ``redis.Redis`` with a plain ``ConnectionPool`` a :class:`LeanClient` sends those commands
itself, on a connection taken from a small stack of idle connections aicache keeps checked out
of each pool (:data:`SPARE_PER_POOL` at most, shared by every backend object and thread on that
pool, and none on a pool too small to spare them). Figures (docs/performance.md, "Hot path"):
sending on a pooled connection took a GET loop from 61.6 to 46.3 µs; keeping the connection
between calls took it from 71 to 34 µs (pinned, one run: the pool's checkout and release cost more
than the round trip's own Python).

Why per pool and bounded, not per backend object: Django makes a backend object per thread (and
per request under ASGI), and a connection held by each object for its life would use up the pool
(redis-py's default holds 100) and starve everything else on it, the single-flight lease included
(review of issue 14: 120 concurrent async requests stored nothing). The stack holds only what
recent calls returned: the connections checked out of the pool stay as many as the calls in
flight, plus at most SPARE_PER_POOL idle ones.

What the pool's checkout does and this keeps: a connection whose command failed is disconnected
(its reply state is unknown) and reconnects on next use; a connection the server closed while it
sat idle (``timeout``, ``CLIENT KILL``, a restart) is found when its next command fails with a
connection error, and that command is sent once more on a fresh connection, as the pool's
readiness poll would have replaced it before sending (both commands are idempotent: a GET, and a
store that writes the same entry and index member again); a timeout, and a connect that fails, are
never retried. A forked child forgets the parent's connection. Anything else (Sentinel or cluster
clients, decoded responses, RESP3, a subclass, a client-side cache) uses the client's own methods.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis
import redis.connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis-py then packs in Python, and so do we (through the connection)
    _hiredis_pack = None

#: Idle connections aicache keeps checked out of one pool between calls, at most; a pool of fewer
#: than 4 * SPARE_PER_POOL connections gets a quarter of its size (a pool of 1 to 3: none kept).
SPARE_PER_POOL = 4

# pool -> its stack of idle connections (list.pop and append are atomic: two threads never get the
# same connection). Weak: a pool that goes away takes its stack along.
_spares: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()
_spares_lock = threading.Lock()


def _forget_in_child() -> None:
    # The parent owns those sockets: the child must neither use nor close them.
    global _spares_lock
    _spares_lock = threading.Lock()  # another thread may have held it at the fork
    for spare in list(_spares.values()):
        spare.clear()


def spare_stack(pool: Any) -> tuple[list[Any], int]:
    """The pool's stack of idle connections, and how many it may hold."""
    with _spares_lock:
        spare = _spares.get(pool)
        if spare is None:
            spare = _spares[pool] = []
    size = getattr(pool, "max_connections", None) or 0
    return spare, min(SPARE_PER_POOL, size // 4)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def usable(client: object) -> bool:
    """Whether ``client`` is one whose commands :class:`LeanClient` may send itself."""
    pool = getattr(client, "connection_pool", None)
    if type(client) is not redis.Redis or type(pool) is not redis.ConnectionPool:
        return False
    kwargs = pool.connection_kwargs
    return (
        not kwargs.get("decode_responses")
        and str(kwargs.get("protocol") or 2) == "2"
        and getattr(pool, "cache", None) is None
    )


def lean_get(client: object) -> Callable[[str], bytes | None]:
    """A ``GET key`` callable for ``client``: the lean path when it is safe, else ``client.get``."""
    if not usable(client):
        return client.get  # type: ignore[attr-defined]
    return LeanClient(client).get


class LeanClient:
    """GET and EVALSHA for one plain ``redis.Redis`` (see the module's docstring)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        pool = self.pool = client.connection_pool
        self.check_reconnect = hasattr(pool.connection_class, "should_reconnect")  # redis-py 6+
        self.acquire = pool.get_connection
        if needs_command_name(pool):  # redis-py < 5.3 (pyproject allows redis>=5)
            self.acquire = functools.partial(pool.get_connection, "GET")
        self.attributes = client.__dict__
        # What redis-py's HiredisRespSerializer ends in, without its per-argument generator (a
        # store's EVALSHA has 14 arguments); only where redis-py would use it too. A GET went from
        # 28.1 to 22.8 us, with run_script a 5 KB store from 137 to 116 us (pinned, 15 rounds).
        self.pack = (
            _hiredis_pack
            if _hiredis_pack is not None
            and redis.connection.HIREDIS_AVAILABLE
            and pool.connection_kwargs.get("command_packer") is None
            else None
        )
        # Idle connections shared with every other client of this pool (see spare_stack).
        self.spare, self.spare_limit = spare_stack(pool)

    def get(self, key: str) -> bytes | None:
        override = self.attributes.get("get")  # a test (or a wrapper) patched this client's get: use it
        if override is not None:
            return override(key)
        return self.call("GET", key)

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """As ``redis.Redis.evalsha`` (raises ``NoScriptError`` for an unknown script)."""
        override = self.attributes.get("evalsha")
        if override is not None:
            return override(sha, numkeys, *args)
        return self.call("EVALSHA", sha, numkeys, *args)

    def script_load(self, script: Any) -> str:
        return self.client.script_load(script)  # once per script and server: the full path

    def run_script(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """What ``script(keys=keys, args=args, client=self)`` does (``script``: a redis-py
        ``Script``), without its per-call tuple building and import."""
        try:
            return self.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # the server does not know it (restarted, flushed): load it once
            script.sha = self.script_load(script.script)
            return self.evalsha(script.sha, len(keys), *keys, *args)

    def call(self, *command: Any) -> Any:
        spare = self.spare
        try:
            conn = spare.pop()
        except IndexError:
            conn = self.acquire()
            idle = False
        else:
            # A socket kept open between calls may have been closed by the server meanwhile; one
            # without a socket connects now, and a failed connect is not retried.
            idle = conn._sock is not None
        pack = self.pack
        try:
            try:
                if pack is not None:
                    conn.send_packed_command([pack(command)])
                else:
                    conn.send_command(*command)
                return conn.read_response()
            except RedisConnectionError:
                if not idle:
                    raise
                # Closed while idle (what the pool's readiness poll catches): once more, fresh.
                conn.disconnect()
                conn.send_command(*command)
                return conn.read_response()
        except redis.ResponseError:  # an error reply was read whole: the connection is in step
            raise
        except BaseException:
            # As redis-py does on a failed command: the connection's state is unknown; drop it.
            conn.disconnect()
            raise
        finally:
            if self.check_reconnect and conn.should_reconnect():  # the server announced maintenance
                conn.disconnect()
            if len(spare) < self.spare_limit:  # a race may add one or two more: still bounded
                spare.append(conn)
            else:
                self.pool.release(conn)


def needs_command_name(pool: object) -> bool:
    """Whether ``pool.get_connection`` requires the command's name: redis-py < 5.3 declares
    ``get_connection(self, command_name, *keys, **options)``; 5.3 made it optional and deprecated
    passing it (a DeprecationWarning on every call), so it is passed only where it is required."""
    try:
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # no introspectable signature: the old, safe form
        return True
    return parameter is not None and parameter.default is inspect.Parameter.empty
