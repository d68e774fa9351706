"""aicache.lean: the read path's GET without redis-py's per-command machinery, on a real Redis."""

import warnings

import pytest
import redis

from aicache.lean import lean_get

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


def test_an_idle_connection_killed_by_the_server_is_replaced_by_the_pool(client):
    get = lean_get(client)
    client.set("lean:k", b"v")
    assert get("lean:k") == b"v"
    (conn,) = client.connection_pool._available_connections
    host, port = conn._sock.getsockname()[:2]
    other = redis.Redis(**{k: client.connection_pool.connection_kwargs[k] for k in ("host", "port")})
    assert other.client_kill_filter(addr=f"{host}:{port}") == 1
    other.close()
    assert get("lean:k") == b"v"


def test_a_command_that_fails_midway_drops_its_connection(client, monkeypatch):
    get = lean_get(client)
    client.set("lean:k", b"v")
    assert get("lean:k") == b"v"
    (conn,) = client.connection_pool._available_connections

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
