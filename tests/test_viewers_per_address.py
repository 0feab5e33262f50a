"""--viewers-per-address: one address cannot take every TV's place; /healthz says when the feed is full."""
import asyncio
import json
import socket

from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.testing import ExpectLog, gen_test
from tornado.websocket import websocket_connect

from tests.conftest import ServerProcess
from tests.test_faults import raw_ws_client
from tests.test_server import ServerTestCase
from tests.test_tokens_and_log import PretendAddresses


class PerAddressTest(ServerTestCase):
    per_address = 3

    def get_http_server(self):
        self.addresses = []
        return PretendAddresses(self._app, self.addresses, **self.get_httpserver_options())

    async def open_from(self, address):
        self.addresses.append(address)
        ws = await websocket_connect("ws://127.0.0.1:%d/websocket" % self.get_http_port())
        self.sockets.append(ws)
        await self.read_json(ws)
        return ws

    async def refused_from(self, address):
        self.addresses.append(address)
        try:
            await websocket_connect("ws://127.0.0.1:%d/websocket" % self.get_http_port())
        except HTTPClientError as e:
            return e
        raise AssertionError("a socket past the limit was opened")

    @gen_test
    async def test_one_address_gets_its_share_and_no_more(self):
        """Three sockets from one address (an IPv6 /64 counts as one); the fourth is 503 naming the option,
        logged once; others still get in; a closed socket gives its place back."""
        mine = [await self.open_from("10.0.0.5") for _ in range(2)] + [await self.open_from("10.0.0.5")]
        with ExpectLog("button.feed", ".*--viewers-per-address"):
            refused = await self.refused_from("10.0.0.5")
            again = await self.refused_from("10.0.0.5")
        assert refused.code == 503 and again.code == 503
        error = json.loads(refused.response.body)["error"]
        assert "--viewers-per-address" in error and "10.0.0.5" in error
        assert int(refused.response.headers["Retry-After"]) >= 1
        for i in range(3):
            await self.open_from("2001:db8:1:2::%d" % (i + 1))
        assert (await self.refused_from("2001:db8:1:2:ffff::9")).code == 503  # the same /64
        await self.open_from("10.0.0.6")  # someone else: welcome
        mine[0].close()
        await self.until_viewers(7)
        await self.open_from("10.0.0.5")
        assert self.feed.of_address == {"10.0.0.5": 3, "2001:db8:1:2::/64": 3, "10.0.0.6": 1}

    @gen_test
    async def test_a_burst_of_handshakes_gets_exactly_the_share(self):
        """Sixty handshakes from one address at once: exactly three open (the count starts at the handshake)."""
        self.addresses.extend(["10.0.0.9"] * 60)
        url = "ws://127.0.0.1:%d/websocket" % self.get_http_port()
        results = await asyncio.gather(*(websocket_connect(url) for _ in range(60)), return_exceptions=True)
        opened = [r for r in results if not isinstance(r, Exception)]
        # Refused: a 503, or (when the server's answer and close beat the client's read) a closed stream.
        refused = [r for r in results if isinstance(r, HTTPClientError) and r.code == 503
                   or isinstance(r, StreamClosedError)]
        self.sockets.extend(opened)
        assert len(opened) == 3, results
        assert len(refused) == 57, [repr(r) for r in results if r not in opened and r not in refused]
        for ws in opened:
            ws.close()
        await self.until_viewers(0)
        assert self.feed.of_address == {}

    async def until_viewers(self, n):
        from tests.conftest import until
        await until(lambda: len(self.feed.waiters) == n)


class FullFeedHealthTest(ServerTestCase):
    max_connections = 2

    @gen_test
    async def test_healthz_is_not_ok_while_the_feed_is_full(self):
        health = json.loads((await self.http_client.fetch(self.get_url("/healthz"))).body)
        assert (health["ok"], health["viewers"], health["max_viewers"]) == (True, 0, 2)
        first = await self.ws_connect()
        await self.ws_connect()
        health = json.loads((await self.http_client.fetch(self.get_url("/healthz"))).body)
        assert (health["ok"], health["viewers"], health["max_viewers"]) == (False, 2, 2)
        assert "--max-connections" in health["error"]
        first.close()
        from tests.conftest import until
        await until(lambda: len(self.feed.waiters) == 1)
        health = json.loads((await self.http_client.fetch(self.get_url("/healthz"))).body)
        assert (health["ok"], health["viewers"]) == (True, 1)


def test_the_real_server_takes_100_sockets_from_one_address(db_path):
    """python websocketserver.py as shipped: 100 sockets from 127.0.0.1, the 101st is 503, the log names the option once."""
    server = ServerProcess(db_path, "--button=none").start()
    sockets = []
    try:
        sockets = [raw_ws_client(server.port) for _ in range(100)]
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(b"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
                assert s.recv(4096).split(b"\r\n")[0].endswith(b"503 Service Unavailable")
        assert server.output().count("--viewers-per-address") == 1
    finally:
        for s in sockets:
            s.close()
        server.stop()
