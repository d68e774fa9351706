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

    attributes = client.__dict__

    def get(key: str) -> bytes | None:
        override = attributes.get("get")  # a test (or a wrapper) patched this client's get: use it
        if override is not None:
            return override(key)
        conn = pool.get_connection()
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
