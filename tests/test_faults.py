"""Faults and hostile clients: full disk, locked database, stuck readers, dead peers, churn."""
import asyncio
import json
import logging
import socket
import sqlite3

from tornado.testing import ExpectLog, gen_test

from tests.conftest import ServerProcess, until
from tests.test_server import AUTH, ServerTestCase
from thebutton.feed import PING_AND_BEAT, PING_SLOTS


def raw_ws_client(port, rcvbuf=None):
    """A WebSocket client that completes the handshake and then never reads or answers pings."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    return s


class DiskFullTest(ServerTestCase):
    def test_full_disk_press_is_refused_then_works_again(self):
        """A full database: the press gets 503 with the reason, nothing changes; once space is back presses work."""
        self.api("POST", "/api/press")
        db = self.repository._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute("PRAGMA max_page_count = %d" % pages)  # SQLite now answers SQLITE_FULL
        before = self.repository.state()
        codes = []
        with ExpectLog("button.web", ".*not stored"):
            for _ in range(1000):  # until the log needs a page it may not have
                code, body = self.api("POST", "/api/press")
                codes.append(code)
                if code != 200:
                    break
        assert codes[-1] == 503 and "full" in body["error"]
        after_fault = self.repository.state()
        assert after_fault.presses == before.presses + len(codes) - 1  # only the acknowledged ones
        db.execute("PRAGMA max_page_count = 1073741823")
        code, body = self.api("POST", "/api/press")
        assert code == 200 and body["presses"] == after_fault.presses + 1


class LockedDatabaseTest(ServerTestCase):
    busy_timeout = 0.2

    def test_locked_database_press_is_refused(self):
        """While another process holds the write lock, a press gets 503 and is not counted."""
        other = sqlite3.connect(self.repository.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with ExpectLog("button.web", ".*not stored"):
                code, body = self.api("POST", "/api/press")
            assert code == 503 and "locked" in body["error"]
        finally:
            other.execute("ROLLBACK")
            other.close()
        code, body = self.api("POST", "/api/press")
        assert code == 200 and body["count"] == 2


class StuckReaderTest(ServerTestCase):
    @gen_test(timeout=60)
    async def test_stuck_reader_is_dropped_and_others_keep_up(self):
        """A client that never reads is dropped once its buffer is full; a reading client gets every update."""
        good = await self.ws_connect()
        await self.read_json(good)
        stuck = await asyncio.get_running_loop().run_in_executor(None, raw_ws_client, self.get_http_port(), 4096)
        await until(lambda: len(self.feed.waiters) == 2)
        received = 0
        state = self.feed.state
        sent = 0
        with ExpectLog("button.feed", "dropped a viewer that stopped reading"):
            while len(self.feed.waiters) == 2:
                assert sent < 200_000, "the stuck reader was never dropped"
                for _ in range(200):
                    self.feed.send_updates(state, "set")
                sent += 200
                while received < sent:  # the good client keeps up (heartbeats are no update)
                    if json.loads(await good.read_message())["event"] != "beat":
                        received += 1
        stuck.close()
        self.repository.press()  # its commit reaches the feed by the change path
        msg = json.loads(await good.read_message())
        while msg["event"] == "beat":
            msg = json.loads(await good.read_message())
        assert (msg["event"], msg["count"]) == ("press", 2)


class PingTestCase(ServerTestCase):
    async def alive_and_dead(self):
        """Two viewers: Tornado's client, which answers pings, and a raw one that never reads."""
        alive = await self.ws_connect()
        await self.read_json(alive)
        dead = await asyncio.get_running_loop().run_in_executor(None, raw_ws_client, self.get_http_port())
        await until(lambda: len(self.feed.waiters) == 2)
        return alive, dead


class DeadPeerTest(PingTestCase):
    ping_interval = 0.2
    ping_timeout = 0.2

    @gen_test(timeout=30)
    async def test_dead_peer_is_dropped_by_pings(self):
        """A peer that stops answering pings is dropped and the waiter set shrinks back."""
        alive, dead = await self.alive_and_dead()
        # The feed's pinger drops it within one interval plus the timeout (0.4 s here).
        with ExpectLog("button.feed", "dropped a viewer that stopped answering pings", level=logging.INFO):
            await until(lambda: len(self.feed.waiters) == 1, timeout=5)
        received = b""
        while chunk := dead.recv(4096):  # the server closed it: read to the end
            received += chunk
        assert received.endswith(PING_AND_BEAT)  # its state, then a ping it never answered
        dead.close()
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        while True:
            msg = json.loads(await alive.read_message())
            if msg["event"] == "press":
                break
        assert msg["count"] == 2


class PingRoundTest(PingTestCase):
    """The feed's one pinger, ticked by hand with a given clock: who is dropped and who stays."""

    ping_interval = 3600  # far beyond the test, so that only the test's own ticks ping
    ping_timeout = 10

    def interval(self, start):
        """One ping interval of ticks, 0.1 s apart from start: every socket is pinged once."""
        for i in range(PING_SLOTS):
            self.feed.ping_tick(now=start + i * 0.1)

    @gen_test(timeout=30)
    async def test_a_pong_keeps_a_viewer_and_silence_drops_it(self):
        alive, dead = await self.alive_and_dead()
        assert all(w.pong_due == 0 for w in self.feed.waiters)  # nothing is due before a ping
        self.interval(1000.0)
        # Tornado's client answers the ping by itself; the raw client never does.
        await until(lambda: sorted(w.pong_due == 0 for w in self.feed.waiters) == [False, True])
        [silent] = [w for w in self.feed.waiters if w.pong_due]
        first = silent.pong_due
        assert 1000.0 <= first < 1002.0
        self.interval(1005.0)  # a second interval, still inside the 10 s timeout
        assert len(self.feed.waiters) == 2
        assert silent.pong_due == first  # still the first unanswered ping, not the latest
        await until(lambda: sorted(w.pong_due == 0 for w in self.feed.waiters) == [False, True])
        with ExpectLog("button.feed", "dropped a viewer that stopped answering pings", level=logging.INFO):
            self.feed.ping_tick(now=first + 10.01)  # any tick past the timeout drops it
        assert len(self.feed.waiters) == 1 and silent not in self.feed.waiters
        await until(lambda: silent.ws_connection is None)  # its connection is closed, not only forgotten
        assert PING_AND_BEAT * 2 in dead.recv(65536)  # it was sent both pings, each with a beat
        dead.close()
        self.repository.press()  # its commit reaches the feed by the change path
        # The live viewer heard a heartbeat with each ping (page scripts cannot see pings).
        events = []
        while not events or events[-1]["event"] != "press":
            events.append(await self.read_json(alive))
        assert [m["event"] for m in events[:2]] == ["beat", "beat"] and events[-1]["count"] == 2


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_connection_churn_leaves_memory_and_waiters_flat(tmp_path, request):
    """Thousands of connect/disconnect cycles leave the viewer count at 0 and RSS where it settled."""
    cycles = request.config.getoption("--churn")
    server = ServerProcess(str(tmp_path / "c.db"), "--button=none").start()
    try:
        from tornado.websocket import websocket_connect

        async def churn(n):
            for _ in range(n):
                ws = await websocket_connect("ws://127.0.0.1:%d/websocket" % server.port)
                await ws.read_message()
                ws.close()

        asyncio.run(churn(500))  # warm up allocator and caches
        before = rss_kb(server.proc.pid)
        asyncio.run(churn(cycles))

        async def viewers_back_to_zero():
            await until(lambda: server.request("GET", "/healthz")[1]["viewers"] == 0)
        asyncio.run(viewers_back_to_zero())
        growth = rss_kb(server.proc.pid) - before
        assert growth < 4096, "RSS grew by %d KB over %d cycles" % (growth, cycles)
    finally:
        server.stop()
