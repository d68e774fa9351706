"""The one Redis command on the read path, without redis-py's per-command machinery.

redis-py 8 wraps every command in a retry closure, a HIMPORT check, observability recording and a
reconnect check (``Redis._execute_command``): ~15 µs of a ~60 µs pinned GET here (a GET loop went
from 61.6 to 46.3 µs; aicache's 800 B Redis hit from 1.50x to 1.27x a raw GET + orjson.loads:
docs/performance.md, "Hot path"). aicache already turns redis-py's retries
off (a hung Redis must cost one timeout) and keeps its own metrics, so a GET on a plain
``redis.Redis`` with a plain ``ConnectionPool`` sends the command on a pooled connection itself.
Anything else (Sentinel or cluster clients, decoded responses, a subclass) uses ``client.get``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import redis


def lean_get(client: object) -> Callable[[str], bytes | None]:
    """A ``GET key`` callable for ``client``: the lean path when it is safe, else ``client.get``."""
    pool = getattr(client, "connection_pool", None)
    if (
        type(client) is not redis.Redis
        or type(pool) is not redis.ConnectionPool
        or pool.connection_kwargs.get("decode_responses")
    ):
        return client.get  # type: ignore[attr-defined]
    check_reconnect = hasattr(pool.connection_class, "should_reconnect")  # redis-py 6+
    acquire = pool.get_connection
    if needs_command_name(pool):  # redis-py < 5.3 (pyproject allows redis>=5)
        acquire = functools.partial(pool.get_connection, "GET")

    attributes = client.__dict__

    def get(key: str) -> bytes | None:
        override = attributes.get("get")  # a test (or a wrapper) patched this client's get: use it
        if override is not None:
            return override(key)
        conn = acquire()
        try:
            conn.send_command("GET", key)
            return conn.read_response()
        except BaseException:
            # As redis-py does on a failed command: the connection's state is unknown; drop it.
            conn.disconnect()
            raise
        finally:
            if check_reconnect and conn.should_reconnect():  # the server announced maintenance
                conn.disconnect()
            pool.release(conn)

    return get


def needs_command_name(pool: object) -> bool:
    """Whether ``pool.get_connection`` requires the command's name: redis-py < 5.3 declares
    ``get_connection(self, command_name, *keys, **options)``; 5.3 made it optional and deprecated
    passing it (a DeprecationWarning on every call), so it is passed only where it is required."""
    try:
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")  # type: ignore[attr-defined]
    except (TypeError, ValueError):  # no introspectable signature: the old, safe form
        return True
    return parameter is not None and parameter.default is inspect.Parameter.empty
