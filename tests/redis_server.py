"""A real ``redis-server`` on a free loopback port for the Redis token store tests (no fakeredis).

``running_redis(workdir)`` starts one and stops it. Where no ``redis-server`` binary exists the
tests skip with a loud reason; with ``WECHAT_KF_REQUIRE_REDIS=1`` (set by CI) they fail instead,
so CI can never silently skip them. Install the server with ``apt-get install redis-server``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
REQUIRE_REDIS = os.environ.get("WECHAT_KF_REQUIRE_REDIS") == "1"


def no_redis() -> NoReturn:
    """Skip (or, when Redis is required, fail) because there is no redis-server binary."""
    message = (
        "REDIS TESTS NOT RUN: no redis-server binary on PATH. Install it "
        "(apt-get install redis-server) to test RedisTokenStore against a real Redis."
    )
    if REQUIRE_REDIS:
        pytest.fail(message + " WECHAT_KF_REQUIRE_REDIS=1 makes this a failure.")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process: start, stop, kill, pause (SIGSTOP), restart on its port."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        port: int | None = None,
        args: tuple[str, ...] = (),
        config: Path | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port() if port is None else port
        self.args = args
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client, for test set-up and inspection."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        """Start the server (no persistence) and wait until it answers PING."""
        log = self.workdir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                *([] if self.config is None else [str(self.config)]),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log),
                "--protected-mode",
                "no",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.02)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # in case a test paused it
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port: every key is gone (no persistence)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port})"


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped on exit; skips the test without a binary."""
    if REDIS_SERVER is None:
        no_redis()
    server = RedisServer(REDIS_SERVER, workdir)
    for attempt in range(3):  # the free port may be taken between probe and bind
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = free_port()
    try:
        yield server
    finally:
        server.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@contextlib.contextmanager
def running_cluster(workdir: Path, nodes: int = 3) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``nodes`` masters (no replicas) on loopback, torn down on exit."""
    if REDIS_SERVER is None:
        no_redis()
    cli = shutil.which("redis-cli")
    if cli is None:
        no_redis()
    servers: list[RedisServer] = []
    try:
        for i in range(nodes):
            node_dir = workdir / f"node{i}"
            node_dir.mkdir()
            port = _cluster_port()
            args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
            server = RedisServer(REDIS_SERVER, node_dir, port=port, args=args)
            server.start()
            servers.append(server)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{s.port}" for s in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 15
        while True:
            states = []
            for server in servers:
                with server.client() as client:
                    states.append(client.cluster("INFO").get("cluster_state"))
            if all(state == "ok" for state in states):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster did not converge: {states}")
            time.sleep(0.05)
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def running_sentinel(workdir: Path, master: RedisServer) -> Iterator[RedisServer]:
    """A Redis Sentinel monitoring ``master`` as ``mymaster``."""
    if REDIS_SERVER is None:
        no_redis()
    conf = workdir / "sentinel.conf"
    conf.write_text(
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )
    sentinel = RedisServer(REDIS_SERVER, workdir, args=("--sentinel",), config=conf)
    sentinel.start()
    try:
        yield sentinel
    finally:
        sentinel.stop()
