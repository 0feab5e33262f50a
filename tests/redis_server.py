"""Test helper: Debian's redis-server on a free 127.0.0.1 port, with its own directory.

``RedisServer`` runs with the settings the README asks for (appendonly yes, appendfsync
always), waits until it answers PING, and can be killed with SIGKILL and started again on
the same port and directory (the AOF brings the data back). Always ``stop()`` it, or use
it as a context manager; the ``redis_server`` fixture does that.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import List, Optional

import pytest

from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A real redis-server for one test."""

    def __init__(self, extra: Optional[List[str]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="button-redis-")
        self.port = free_port()
        self.extra = extra or []
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.dir, "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--logfile", self.log_path, *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:  # polling to a deadline: redis-server signals nothing when it is ready
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{self.output()}")
            if self.ping():
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer on {self.port}:\n{self.output()}")
            time.sleep(0.02)

    def ping(self) -> bool:
        """Whether it answers PING now (it says LOADING while it reads its AOF)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def client(self):
        """A blocking redis-py client for the test's own look at the data."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: only what is in the AOF survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()


@pytest.fixture
def redis_server():
    """A running redis-server for one test, stopped and removed afterwards."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.remove()
