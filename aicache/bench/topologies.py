"""Throwaway Redis topologies on loopback, for tests and benchmarks: a Sentinel setup (1 master,
1 replica, 3 sentinels) and a Redis Cluster (3 primaries, 3 replicas). Every process listens on
127.0.0.1 only and is stopped by :meth:`stop` (by its own pid)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from aicache.bench.redis_server import free_port

SERVICE = "mymaster"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (redis.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _reap(process: subprocess.Popen) -> None:
    """Wait for a terminated process; kill it after 10 s."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Processes:
    def __init__(self, workdir: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen] = {}
        self.password = password  # ClusterSetup: every node started with requirepass + masterauth

    def connect(self, port: int, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, **kwargs)

    def spawn(self, port: int, *args: str, config: str | None = None) -> None:
        cmd = [self.binary]
        if config is not None:
            cmd.append(config)
        cmd += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        cmd += ["--dir", str(self.workdir), "--logfile", str(self.workdir / f"{port}.log"), *args]
        self.processes[port] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.connect(port, socket_connect_timeout=0.2)
        try:
            _wait(client.ping, 10, f"redis on port {port} (see {self.workdir}/{port}.log)")
        finally:
            client.close()

    def kill(self, port: int) -> None:
        process = self.processes.pop(port, None)
        if process is not None and process.poll() is None:
            process.terminate()
            _reap(process)

    def stop(self) -> None:
        """Stop every process at once: one by one, a Redis 7 primary stopped before its replica
        waits for it to catch up (``shutdown-timeout``), about a second per primary."""
        processes = list(self.processes.values())
        self.processes.clear()
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            _reap(process)


class SentinelSetup(_Processes):
    """A master, a replica and three sentinels watching them as ``mymaster``."""

    def start(self) -> None:
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.spawn(self.master_port)
        self.spawn(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.spawn(port, "--sentinel", config=str(conf))
        self._started = False
        _wait(self._ready, 20, "the replica in sync and every sentinel seeing it")
        self._started = True

    def _ready(self) -> bool:
        master = self.master_address() if self._started else ("127.0.0.1", self.master_port)
        replica_port = next(port for port in (self.master_port, self.replica_port) if port != master[1])
        replica = redis.Redis(port=replica_port)
        try:
            info = replica.info("replication")
            if info.get("master_link_status") != "up" or int(info.get("master_port", 0)) != master[1]:
                return False
        finally:
            replica.close()
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port)
            try:
                fields = sentinel.sentinel_master(SERVICE)
                if int(fields["num-slaves"]) < 1 or int(fields["num-other-sentinels"]) < 2:
                    return False
                if int(fields["port"]) != master[1]:
                    return False
                replicas = sentinel.sentinel_slaves(SERVICE)
                if not any(r["port"] == replica_port and "s_down" not in r["flags"] for r in replicas):
                    return False
            finally:
                sentinel.close()
        return True

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the replica replicates from the current master and every sentinel knows it."""
        _wait(self._ready, timeout, "the replica in sync and every sentinel seeing it")

    def nodes(self) -> list[tuple[str, int]]:
        """The master's and the replica's addresses (whichever is master now)."""
        return [("127.0.0.1", port) for port in (self.master_port, self.replica_port)]

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def master_address(self) -> tuple[str, int]:
        sentinel = redis.Redis(port=self.sentinel_ports[0])
        try:
            host, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return host.decode(), int(port)
        finally:
            sentinel.close()

    def failover(self, timeout: float = 30, rejoin: bool = False) -> tuple[str, int]:
        """``SENTINEL FAILOVER``; returns the new master once it accepts writes (with ``rejoin``,
        once the old master replicates from it too, so that a second failover can follow)."""
        old = self.master_address()
        sentinel = redis.Redis(port=self.sentinel_ports[0])
        try:
            sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        finally:
            sentinel.close()

        def promoted():
            address = self.master_address()
            if address == old:
                return None
            client = redis.Redis(host=address[0], port=address[1])
            try:
                return address if client.info("replication")["role"] == "master" else None
            finally:
                client.close()

        new = _wait(promoted, timeout, "the failover")
        if not rejoin:
            return new
        demoted = redis.Redis(port=old[1])
        try:
            _wait(
                lambda: demoted.info("replication").get("master_link_status") == "up",
                timeout,
                "the old master to replicate",
            )
        finally:
            demoted.close()
        return new

    def kill_master(self, timeout: float = 30) -> tuple[str, int]:
        """Kill the master's process; once the sentinels have promoted the replica, restart the
        dead one as its replica (so the setup has two nodes again). Returns the new master."""
        old = self.master_address()
        self.kill(old[1])
        new = _wait(lambda: (a := self.master_address()) != old and a, timeout, "the sentinels' failover")
        self.spawn(old[1], "--replicaof", new[0], str(new[1]))
        return new


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port <= 55535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


class ClusterSetup(_Processes):
    """Three primaries with one replica each, created by ``redis-cli --cluster create``."""

    def start(self) -> None:
        self.ports = [cluster_port() for _ in range(6)]
        for port in self.ports:
            self.restart(port)
        self.cli(
            "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "1",
            "--cluster-yes",
        )  # fmt: skip
        _wait(self._ready, 30, "cluster_state:ok on every node")

    def restart(self, port: int) -> None:
        """(Re)start the node on ``port``; its nodes file brings it back into the cluster (a
        failed-over primary rejoins as a replica)."""
        self.spawn(
            port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            "2000",
            # its own file: a replica's full sync writes one, and a node started later on the same
            # directory must not load another node's keys
            "--dbfilename",
            f"dump-{port}.rdb",
            *(("--requirepass", self.password, "--masterauth", self.password) if self.password else ()),
        )

    def slot_map(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, primary port) as a live node sees it."""
        for port in self.ports:
            if port not in self.processes:
                continue
            client = self.connect(port, socket_timeout=2)
            try:
                return sorted((r[0], r[1], int(r[2][1])) for r in client.execute_command("CLUSTER", "SLOTS"))
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        return []

    def cli(self, *args: str) -> str:
        binary = shutil.which("redis-cli")
        if binary is None:
            raise RuntimeError("redis-cli is not installed (it comes with Debian's redis-server package)")
        auth = ("-a", self.password, "--no-auth-warning") if self.password else ()
        command = [binary, *auth, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args[:3])} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def _ready(self) -> bool:
        for port in self.ports:
            client = self.connect(port)
            try:
                info = client.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
                if len(client.execute_command("CLUSTER", "SLOTS")) < 3:
                    return False
                # every node agrees on the roles (a replica still seen as a master would make a
                # coherence watch follow a map that is about to change)
                nodes = client.execute_command("CLUSTER", "NODES").decode().splitlines()
                if sum("master" in line.split()[2] for line in nodes) != 3:
                    return False
            finally:
                client.close()
        return True

    @property
    def location(self) -> str:
        return ",".join(f"redis://127.0.0.1:{port}" for port in self.ports[:3])

    def primaries(self) -> list[tuple[str, int, str]]:
        """(host, port, node id) of each primary."""
        client = self.connect(self.ports[0])
        try:
            out = set()
            for row in client.execute_command("CLUSTER", "SLOTS"):
                host, port, node_id = row[2][0], row[2][1], row[2][2]
                out.add((host.decode() if isinstance(host, bytes) else host, int(port), node_id.decode()))
            return sorted(out)
        finally:
            client.close()

    def reshard(self, source: str, target: str, slots: int) -> None:
        """``redis-cli --cluster reshard``: move ``slots`` slots from node ``source`` to ``target``."""
        self.cli(
            "--cluster", "reshard", f"127.0.0.1:{self.ports[0]}", "--cluster-from", source,
            "--cluster-to", target, "--cluster-slots", str(slots), "--cluster-yes",
        )  # fmt: skip

    def node_id(self, port: int) -> str:
        client = self.connect(port)
        try:
            return client.execute_command("CLUSTER", "MYID").decode()
        finally:
            client.close()

    def add_node(self) -> int:
        """``redis-cli --cluster add-node``: a new, empty master (no slots); returns its port once
        every node knows it."""
        port = cluster_port()
        for stale in (f"nodes-{port}.conf", f"dump-{port}.rdb"):  # a removed node's, same port
            (self.workdir / stale).unlink(missing_ok=True)
        self.restart(port)
        self.cli("--cluster", "add-node", f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[0]}")
        self.ports.append(port)
        new_id = self.node_id(port)

        def known_everywhere() -> bool:
            for other in self.ports:
                client = self.connect(other)
                try:
                    nodes = client.execute_command("CLUSTER", "NODES").decode()
                finally:
                    client.close()
                line = next((row for row in nodes.splitlines() if row.startswith(new_id)), "")
                if "master" not in line or "handshake" in line or "connected" not in line:
                    return False
            client = self.connect(port)
            try:
                return "cluster_state:ok" in client.execute_command("CLUSTER", "INFO").decode()
            finally:
                client.close()

        _wait(known_everywhere, 30, f"every node to know the new master on {port}")
        return port

    def move_slot(self, slot: int, source: int, target: int) -> None:
        """Move one slot and its keys from the master on ``source`` to the one on ``target``
        (the steps ``redis-cli --cluster reshard`` takes for each slot)."""
        src, dst = self.connect(source), self.connect(target)
        try:
            src_id, dst_id = self.node_id(source), self.node_id(target)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            for port in self.ports:
                if port in self.processes:
                    client = self.connect(port)
                    try:
                        if b"master" in client.execute_command("ROLE")[0]:
                            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                    finally:
                        client.close()
        finally:
            src.close()
            dst.close()

    def remove_node(self, port: int) -> None:
        """``redis-cli --cluster del-node`` of a master without slots, then stop its process."""
        self.cli("--cluster", "del-node", f"127.0.0.1:{self.ports[0]}", self.node_id(port))
        self.kill(port)
        self.ports.remove(port)
