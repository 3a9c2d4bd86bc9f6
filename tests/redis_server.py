"""Real redis-server processes for tests: started on free ports, killed and restarted at will.

``RedisServer`` is one server (optionally TLS-only or with a unix socket as well);
``RedisSentinelSetup`` is a master, a replica and three sentinels; ``RedisClusterSetup``
is a three-master Redis Cluster made with ``redis-cli --cluster create``. Every helper
polls with a deadline and kills whatever it started when it fails half-way.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOTS = 16384


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too and below 65536."""
    for _ in range(200):
        port = _free_port()
        if port <= 55535:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for a cluster node")


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; its last error explains a timeout."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # a server still starting refuses, times out, errors
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s (last error: {last!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class TLSFiles:
    """A self-signed certificate for 127.0.0.1 that is also its own CA."""

    cert: Path
    key: Path

    @property
    def ca(self) -> Path:
        return self.cert


def make_tls_files(directory: Path) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return TLSFiles(cert, key)


def short_socket_path(workdir: Path, name: str = "redis.sock") -> Path:
    """A unix socket path under the 107-byte limit (pytest's tmp paths can be long)."""
    path = workdir / name
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="rtctl-redis-")) / name


@dataclass
class RedisServer:
    workdir: Path
    port: int = field(default_factory=_free_port)
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    tls: TLSFiles | None = None  # TLS only: the port speaks TLS, no plain port
    unixsocket: Path | None = None  # also listen on this unix socket
    config_file: Path | None = None  # read first (a sentinel needs a writable one)
    sentinel: bool = False

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        assert self.unixsocket is not None
        return f"unix://{self.unixsocket}?db=0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _args(self, binary: str) -> list[str]:
        args = [binary]
        if self.config_file is not None:
            args.append(str(self.config_file))
        if self.sentinel:
            args.append("--sentinel")
        if self.tls is not None:
            tls = self.tls
            args += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
                     "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]  # fmt: skip
        else:
            args += ["--port", str(self.port)]
        args += ["--bind", "127.0.0.1", "--dir", str(self.workdir), "--protected-mode", "no"]
        if not self.sentinel:
            args += ["--save", "", "--appendonly", "no"]
        if self.unixsocket is not None:
            args += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        return [*args, *self.extra]

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = redis_binary()
        assert binary, "redis-server is not installed (scripts/test installs it)"
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(self._args(binary), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING: {self.log()}")

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                if self.tls is None:
                    raw.sendall(b"PING\r\n")
                    return raw.recv(16).startswith(b"+PONG")
                context = ssl.create_default_context(cafile=str(self.tls.ca))
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self, timeout: float = 2.0) -> Any:
        """A synchronous redis-py client (decoded replies) for setup and inspection."""
        import redis

        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {"ssl": True, "ssl_ca_certs": str(self.tls.ca)}
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True,
            socket_timeout=timeout, socket_connect_timeout=timeout, **tls,
        )  # fmt: skip

    def command(self, *args: Any) -> Any:
        """One command on a fresh connection (no client state survives a kill)."""
        with self.client() as c:
            return c.execute_command(*args)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as c:
            info: dict[str, Any] = c.info(section)
            return info

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the data (kept only in memory) is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> RedisServer:
        """Kill and start again, empty, on the same port."""
        self.kill()
        return self.start()


# Sentinel -----------------------------------------------------------------------------------

SENTINEL_CONF = """\
port {port}
bind 127.0.0.1
protected-mode no
dir "{dir}"
sentinel monitor {service} 127.0.0.1 {master_port} 2
sentinel down-after-milliseconds {service} 1000
sentinel failover-timeout {service} 3000
sentinel parallel-syncs {service} 1
"""


@dataclass
class RedisSentinelSetup:
    """One master, one replica (``--replicaof``) and three sentinels watching them.

    ``master`` and ``replica`` follow the roles: ``failover()`` swaps them once the
    sentinels agree. ``url`` is the rtctl form of the deployment.
    """

    workdir: Path
    service: str = "rtctl-test"
    servers: list[RedisServer] = field(default_factory=list)
    sentinels: list[RedisServer] = field(default_factory=list)
    master: RedisServer = field(init=False)
    replica: RedisServer = field(init=False)

    @property
    def url(self) -> str:
        hosts = ",".join(s.address for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def start(self, timeout: float = 20.0, *, peers: bool = False) -> RedisSentinelSetup:
        """Start everything; ``peers`` also waits (~2 s more) until the sentinels know
        each other, which an automatic failover (``kill_master``) needs for a quorum."""
        try:
            # a full sync starts at once (the default waits 5 s for more replicas to join)
            quick = ("--repl-diskless-sync-delay", "0")
            self.master = RedisServer(self.workdir / "master", extra=quick)
            self.servers.append(self.master)
            self.master.start()
            self.replica = RedisServer(
                self.workdir / "replica",
                extra=(*quick, "--replicaof", "127.0.0.1", str(self.master.port)),
            )
            self.servers.append(self.replica)
            self.replica.start()
            for i in range(3):
                workdir = self.workdir / f"sentinel-{i}"
                workdir.mkdir(parents=True, exist_ok=True)
                port = _free_port()
                conf = workdir / "sentinel.conf"
                conf.write_text(
                    SENTINEL_CONF.format(
                        port=port, dir=workdir, service=self.service, master_port=self.master.port
                    )
                )
                sentinel = RedisServer(workdir, port=port, config_file=conf, sentinel=True)
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_settled(timeout, peers=peers)
        except BaseException:
            self.stop()
            raise
        return self

    def master_seen_by(self, sentinel: RedisServer) -> int | None:
        addr = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(addr[1]) if addr else None

    def _replica_ready(self, sentinel: RedisServer) -> bool:
        for entry in sentinel.command("SENTINEL", "REPLICAS", self.service):
            row = (
                dict(zip(entry[::2], entry[1::2], strict=True))
                if isinstance(entry, list)
                else entry
            )
            if (
                int(row["port"]) == self.replica.port
                and row["flags"] == "slave"
                and row.get("master-link-status") == "ok"
            ):
                return True
        return False

    def _peers(self, sentinel: RedisServer) -> int:
        row = sentinel.command("SENTINEL", "MASTER", self.service)
        if isinstance(row, list):
            row = dict(zip(row[::2], row[1::2], strict=True))
        return int(row["num-other-sentinels"])

    def wait_settled(self, timeout: float = 20.0, *, peers: bool = True) -> None:
        """Every sentinel agrees on the master, knows the replica (link up) and, with
        ``peers``, the other sentinels."""

        def settled() -> bool:
            if self.replica.info("replication").get("master_link_status") != "up":
                return False
            return all(
                self.master_seen_by(s) == self.master.port
                and self._replica_ready(s)
                and (not peers or self._peers(s) == len(self.sentinels) - 1)
                for s in self.sentinels
            )

        wait_for("sentinel setup settled", settled, timeout, interval=0.1)

    def failover(self, timeout: float = 30.0) -> float:
        """``SENTINEL FAILOVER``, then wait until every sentinel names the replica as master.

        Returns the seconds it took; ``master`` and ``replica`` are swapped.
        """
        started = time.monotonic()
        old, new = self.master, self.replica
        self.wait_replicated(timeout)  # a planned switch: lose no acknowledged write

        def ask() -> bool:  # refused (NOGOODSLAVE, INPROG) while the sentinel is not ready
            return bool(self.sentinels[0].command("SENTINEL", "FAILOVER", self.service))

        wait_for("SENTINEL FAILOVER accepted", ask, timeout, interval=0.2)
        self._wait_master(new, timeout - (time.monotonic() - started))
        self.master, self.replica = new, old
        return time.monotonic() - started

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Until the replica has every write the master has (replication is asynchronous)."""

        def caught_up() -> bool:
            master = int(self.master.info("replication")["master_repl_offset"])
            replica = self.replica.info("replication")
            return replica.get("master_link_status") == "up" and (
                int(replica.get("slave_repl_offset", -1)) >= master
            )

        wait_for("replica caught up with the master", caught_up, timeout)

    def kill_master(self) -> RedisServer:
        """SIGKILL the master (the sentinels fail over on their own after ~1 s down)."""
        killed = self.master
        killed.kill()
        return killed

    def wait_new_master(self, timeout: float = 30.0) -> float:
        """After ``kill_master``: wait until every sentinel names the replica; swap roles."""
        started = time.monotonic()
        old, new = self.master, self.replica
        self._wait_master(new, timeout)
        self.master, self.replica = new, old
        return time.monotonic() - started

    def _wait_master(self, new: RedisServer, timeout: float) -> None:
        def switched() -> bool:
            return new.info("replication").get("role") == "master" and all(
                self.master_seen_by(s) == new.port for s in self.sentinels
            )

        wait_for(f"sentinels report master {new.address}", switched, max(timeout, 1.0), 0.1)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.kill()


# Cluster ------------------------------------------------------------------------------------


@dataclass
class RedisClusterSetup:
    """A Redis Cluster of ``size`` masters (no replicas), made with ``redis-cli --cluster``."""

    workdir: Path
    size: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A seed: any one node; the client discovers the others."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> RedisClusterSetup:
        try:
            for i in range(self.size):
                node = RedisServer(
                    self.workdir / f"node-{i}",
                    port=_cluster_port(),
                    extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                           "--cluster-node-timeout", "3000"),
                )  # fmt: skip
                self.nodes.append(node)
                node.start()
            cli = shutil.which("redis-cli")
            assert cli, "redis-cli is not installed (it ships with redis-server)"
            created = subprocess.run(
                [cli, "--cluster", "create", *(n.address for n in self.nodes), "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
            wait_for("cluster_state:ok on every node", self._all_ok, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _all_ok(self) -> bool:
        for node in self.nodes:
            info = node.command("CLUSTER", "INFO")
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if (
                fields.get("cluster_state") != "ok"
                or int(fields.get("cluster_slots_ok", 0)) != SLOTS
                or int(fields.get("cluster_known_nodes", 0)) != self.size
            ):
                return False
        return True

    def node_for_slot(self, slot: int) -> RedisServer:
        for start, end, master, *_ in self.nodes[0].command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"slot {slot} is not served")

    def node_for_key(self, key: str) -> RedisServer:
        return self.node_for_slot(int(self.nodes[0].command("CLUSTER", "KEYSLOT", key)))

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
