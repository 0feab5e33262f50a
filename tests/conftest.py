"""Shared fixtures: a database path, a running server process, free ports."""
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import tornado.testing

if not hasattr(tornado.testing.AsyncTestCase, "runTest"):
    # pytest builds every unittest class once as Class("runTest") before it collects the
    # tests in it, and Tornado 6.1's AsyncTestCase.__init__ fails unless that method exists
    # (newer Tornado checks first). pytest never runs runTest where a class has test methods,
    # and pytest_pycollect_makeitem below skips the classes that have none.
    tornado.testing.AsyncTestCase.runTest = lambda self: None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TOKEN = "test-token-123"


def build_app(store, feed=None, metrics=None, **kwargs):
    """make_app as websocketserver.wire calls it: a Metrics of the feed, the templates in ROOT."""
    from thebutton.app import make_app
    from thebutton.feed import Feed
    from thebutton.metrics import Metrics

    feed = feed or Feed(store.state())
    metrics = metrics or Metrics(feed, kwargs.get("health"))
    return make_app(store, feed, metrics, ROOT, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python websocketserver.py`` run as a user would, on a free 127.0.0.1 port."""

    def __init__(self, db, *args, port=None, stdin=subprocess.DEVNULL, env=None):
        self.db = db
        self.env = env or {}  # more environment for the process (TZ, libfaketime's)
        self.port = port or free_port()
        db_arg = [] if db is None else ["--db=%s" % db]  # None: the server's default path
        self.args = ["--port=%d" % self.port, "--address=127.0.0.1", *db_arg, *args]
        self.stdin = stdin
        self.proc = None
        self.script = os.path.join(ROOT, "websocketserver.py")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, wait=True):
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        # The log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log = tempfile.NamedTemporaryFile(prefix="button-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, self.script, *self.args],
            stdin=self.stdin, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd="/",
        )
        if wait:
            self.wait_for_server()
        return self

    def wait_for_server(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)  # polling to a deadline: nothing to wait on before it listens
        raise AssertionError("server did not answer within %ss" % timeout)

    def request(self, method, path, body=None, token=TOKEN):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        return self.proc.returncode if self.proc else None

    def output(self):
        """What the server has logged so far."""
        with open(self.log.name, errors="replace") as f:
            return f.read()


async def until(predicate, timeout=10.0):
    """Poll a condition of the server's state to a deadline (no event exists for it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in %ss" % timeout
        await asyncio.sleep(0.02)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "counter.db")


@pytest.fixture
def server_factory(db_path):
    started = []

    def start(*args, db=None, **kw):
        server = ServerProcess(db or db_path, *args, **kw)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def pytest_addoption(parser):
    parser.addoption("--churn", type=int, default=3000,
                     help="connect/disconnect cycles in the churn test (the full check is 20000)")


def pytest_pycollect_makeitem(collector, name, obj):
    """Collect no TestCase class that has no tests (AsyncHTTPTestCase and our bases, as imported).

    Tornado 6.1's AsyncTestCase cannot even be built without a test method, so collecting
    such a base class would fail the run; newer Tornado only makes an empty item.
    """
    import unittest
    if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
        if not any(attr.startswith("test") for attr in dir(obj)):
            return []
    return None
