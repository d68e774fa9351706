"""aicache.lean: the read path's GET without redis-py's per-command machinery, on a real Redis."""

import gc
import multiprocessing
import os
import warnings

import pytest
import redis

from aicache.lean import LeanClient, lean_get

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_server):
    c = redis.Redis.from_url(f"{redis_server.url}/0")
    yield c
    c.delete("lean:k")
    c.close()


def test_reads_what_redis_py_reads(client):
    get = lean_get(client)
    assert get != client.get  # the lean path was chosen
    client.set("lean:k", b"\x00frame bytes")
    assert get("lean:k") == client.get("lean:k") == b"\x00frame bytes"
    assert get("lean:missing") is None


def test_an_idle_connection_killed_by_the_server_is_replaced(client):
    get = lean_get(client)
    client.set("lean:k", b"v")
    assert get("lean:k") == b"v"
    (conn,) = client.connection_pool._in_use_connections  # the one kept between calls
    host, port = conn._sock.getsockname()[:2]
    other = redis.Redis(**{k: client.connection_pool.connection_kwargs[k] for k in ("host", "port")})
    assert other.client_kill_filter(addr=f"{host}:{port}") == 1
    other.close()
    assert get("lean:k") == b"v"
    assert conn._sock.getsockname()[:2] != (host, port)  # reconnected, not the killed socket


def test_the_connection_is_kept_between_calls_and_released_when_the_client_goes(client):
    lean = LeanClient(client)
    client.set("lean:k", b"v")
    ids = {lean.call("CLIENT", "ID") for _ in range(5)}
    assert len(ids) == 1 and lean.get("lean:k") == b"v"
    pool = client.connection_pool
    (kept,) = pool._in_use_connections
    del lean
    gc.collect()
    assert not pool._in_use_connections and kept in pool._available_connections


def test_a_second_caller_meanwhile_gets_its_own_connection(client, monkeypatch):
    """Two threads sharing one LeanClient, staged: while the first is inside its command (its
    reply not read yet), a second call runs; neither uses the other's connection."""
    lean = LeanClient(client)
    client.set("lean:k", b"v")
    assert lean.get("lean:k") == b"v"
    (first,) = client.connection_pool._in_use_connections
    nested = []
    read = first.read_response

    def read_then_interleave(*args, **kwargs):
        if not nested:
            nested.append(lean.call("CLIENT", "ID"))  # the "other thread", mid-command
        return read(*args, **kwargs)

    monkeypatch.setattr(first, "read_response", read_then_interleave)
    ours = lean.call("CLIENT", "ID")
    monkeypatch.undo()
    assert nested[0] != ours  # two connections, each reply on its own
    assert len(lean.spare) == 1  # one is kept, the other went back to the pool
    assert len(client.connection_pool._in_use_connections) == 1


def test_a_timeout_is_not_retried(client, monkeypatch):
    lean = LeanClient(client)
    client.set("lean:k", b"v")
    assert lean.get("lean:k") == b"v"
    (conn,) = lean.spare
    calls = []

    def hung(*args, **kwargs):
        calls.append(1)
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(conn, "read_response", hung)
    with pytest.raises(redis.TimeoutError):
        lean.get("lean:k")
    assert calls == [1] and conn._sock is None
    monkeypatch.undo()
    assert lean.get("lean:k") == b"v"


def test_the_store_script_runs_through_evalsha_and_loads_itself_when_unknown(client):
    lean = LeanClient(client)
    script = client.register_script("return redis.call('SET', KEYS[1], ARGV[1]) and 7")
    client.script_flush()
    assert script(keys=["lean:k"], args=[b"w"], client=lean) == 7  # NOSCRIPT, then loaded
    assert script(keys=["lean:k"], args=[b"x"], client=lean) == 7
    assert client.get("lean:k") == b"x"
    client.script_flush()
    assert lean.run_script(script, ["lean:k"], [b"y"]) == 7  # the same, without Script.__call__
    assert lean.run_script(script, ["lean:k"], [b"z"]) == 7
    assert client.get("lean:k") == b"z"
    with pytest.raises(redis.ResponseError):
        lean.call("INCR", "lean:k")  # an error reply: the kept connection stays in step
    assert lean.get("lean:k") == b"z"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_uses_the_parents_connection(client):
    lean = LeanClient(client)
    parent_id = lean.call("CLIENT", "ID")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child():
        queue.put((lean.call("CLIENT", "ID"), lean.get("lean:missing")))

    process = ctx.Process(target=child)
    process.start()
    child_id, value = queue.get(timeout=20)
    process.join(20)
    assert process.exitcode == 0 and value is None
    assert child_id != parent_id
    assert lean.call("CLIENT", "ID") == parent_id  # the parent's connection is untouched


def test_a_command_that_fails_midway_drops_its_connection(client, monkeypatch):
    get = lean_get(client)
    client.set("lean:k", b"v")
    assert get("lean:k") == b"v"
    (conn,) = client.connection_pool._in_use_connections  # the one kept between calls

    def broken(*args, **kwargs):
        raise redis.ConnectionError("reply lost")

    monkeypatch.setattr(conn, "read_response", broken)
    with pytest.raises(redis.ConnectionError):
        get("lean:k")
    assert conn._sock is None  # disconnected, not handed back with a reply still unread
    monkeypatch.undo()
    assert get("lean:k") == b"v"


def test_falls_back_to_client_get_where_the_lean_path_is_not_safe(redis_server):
    class Wrapped(redis.Redis):
        pass

    decoded = redis.Redis.from_url(f"{redis_server.url}/0", decode_responses=True)
    wrapped = Wrapped.from_url(f"{redis_server.url}/0")
    for c in (decoded, wrapped):
        assert lean_get(c) == c.get
        c.close()


def test_a_patched_client_get_is_honoured(client, monkeypatch):
    get = lean_get(client)
    monkeypatch.setattr(client, "get", lambda key: b"patched")
    assert get("lean:k") == b"patched"


def test_redis_py_before_5_3_is_given_the_command_name(client, monkeypatch):
    """redis-py 5.0-5.2 (pyproject allows redis>=5) declare ``get_connection(self, command_name,
    *keys, **options)``: simulated on the installed pool class."""
    client.set("lean:k", b"v")
    current = redis.ConnectionPool.get_connection
    names = []

    def get_connection(self, command_name, *keys, **options):  # the < 5.3 signature
        names.append(command_name)
        return current(self)

    monkeypatch.setattr(redis.ConnectionPool, "get_connection", get_connection)
    get = lean_get(client)
    assert get != client.get  # still the lean path
    assert get("lean:k") == b"v"
    monkeypatch.undo()  # before the fixture's own cleanup, which uses the real signature
    assert names == ["GET"]


def test_redis_py_5_3_and_later_get_no_deprecated_argument(client):
    client.set("lean:k", b"v")
    get = lean_get(client)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # passing command_name warns since 5.3
        assert get("lean:k") == b"v"


@pytest.mark.parametrize(("connected", "sends"), [(True, 2), (False, 1)])
def test_only_a_connection_kept_open_is_given_a_second_try(client, monkeypatch, connected, sends):
    """An open socket kept idle may have been closed by the server: one more try on a fresh one.
    A kept connection without a socket connects on this call, and a failed connect is final."""
    lean = LeanClient(client)
    client.set("lean:k", b"v")
    assert lean.get("lean:k") == b"v"
    (conn,) = lean.spare
    if not connected:
        conn.disconnect()
    calls = []

    def refused(*args, **kwargs):
        calls.append(1)
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(conn, "send_packed_command", refused)
    monkeypatch.setattr(conn, "send_command", refused)
    with pytest.raises(redis.ConnectionError):
        lean.get("lean:k")
    assert len(calls) == sends and conn._sock is None
    monkeypatch.undo()
    assert lean.get("lean:k") == b"v"
