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


def test_idle_connections_are_kept_per_pool_not_per_client_object(client):
    """Django makes a backend object per thread (per request under ASGI): a connection held per
    object would use up the pool. One idle connection serves every client of the pool instead."""
    pool = client.connection_pool
    first, second = LeanClient(client), LeanClient(client)
    client.set("lean:k", b"v")
    ids = {first.call("CLIENT", "ID") for _ in range(3)} | {second.call("CLIENT", "ID") for _ in range(3)}
    assert len(ids) == 1 and len(pool._in_use_connections) == 1
    del first, second
    gc.collect()
    for _ in range(150):  # more objects made and dropped than the pool's 100 connections
        assert LeanClient(client).get("lean:k") == b"v"
    assert len(pool._in_use_connections) == 1  # still the one idle connection, kept for the pool


def _nested_calls(lean, monkeypatch, depth):
    """``depth`` calls in flight at once, staged: each call's read starts the next one first."""
    ids = []
    read = redis.connection.Connection.read_response

    def read_then_nest(conn, *args, **kwargs):
        if len(ids) < depth - 1:
            slot = len(ids)
            ids.append(None)
            ids[slot] = lean.call("CLIENT", "ID")
        return read(conn, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "read_response", read_then_nest)
    ids.append(lean.call("CLIENT", "ID"))
    monkeypatch.undo()
    return ids


def test_a_second_caller_meanwhile_gets_its_own_connection(client, monkeypatch):
    """Two threads sharing one LeanClient, staged: while the first is inside its command (its
    reply not read yet), a second call runs; neither uses the other's connection."""
    lean = LeanClient(client)
    client.set("lean:k", b"v")
    assert lean.get("lean:k") == b"v"
    ids = _nested_calls(lean, monkeypatch, 2)
    assert len(set(ids)) == 2  # two connections, each reply on its own
    assert len(lean.spare) == 2 and len(client.connection_pool._in_use_connections) == 2


def test_at_most_four_idle_connections_stay_out_of_the_pool(client, monkeypatch):
    lean = LeanClient(client)
    ids = _nested_calls(lean, monkeypatch, 7)
    assert len(set(ids)) == 7
    assert len(lean.spare) == 4  # the other three went back to the pool
    pool = client.connection_pool
    assert len(pool._in_use_connections) == 4 and len(pool._available_connections) == 3


@pytest.mark.parametrize(("max_connections", "kept"), [(1, 0), (3, 0), (4, 1), (8, 2), (1000, 4)])
def test_a_small_pool_lends_fewer_idle_connections(redis_server, max_connections, kept, monkeypatch):
    """A pool of 1-3 connections keeps none idle: the single-flight lease and every other command
    of the app need them (review of issue 14: max_connections=1 lost the lease)."""
    client = redis.Redis.from_url(f"{redis_server.url}/0", max_connections=max_connections)
    lean = LeanClient(client)
    assert lean.spare_limit == kept
    assert lean.get("lean:absent") is None
    assert len(client.connection_pool._in_use_connections) == min(kept, 1)
    assert client.set("lean:k", b"v") and client.get("lean:k") == b"v"  # redis-py has a connection
    client.delete("lean:k")
    client.close()


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
