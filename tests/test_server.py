"""The Tornado app in-process: page, static files, API, auth, and the WebSocket feed."""
import json
import os

from tornado.httpclient import HTTPClientError
from tornado.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from tornado.websocket import websocket_connect

from Repository import Repository
from tests.conftest import build_app, until
from thebutton.changes import Changes
from thebutton.feed import MAX_CLIENT_MESSAGE, Feed
from thebutton.metrics import Metrics
from thebutton.store import State
from thebutton.web import server_options

TOKEN = "s3cret"
AUTH = {"Authorization": "Bearer " + TOKEN}


class ServerTestCase(AsyncHTTPTestCase):
    token = TOKEN
    max_connections = 1000
    per_address = 0  # --viewers-per-address; 0 = none (the tests open many sockets from 127.0.0.1)
    busy_timeout = 5.0
    ping_interval = 20.0  # seconds, as the server's default
    ping_timeout = 10.0
    throttle = None  # api.Throttle: None = make_app's own
    lang = "auto"  # --lang

    def setUp(self):
        self.tmp = __import__("tempfile").mkdtemp()
        self.repository = Repository(os.path.join(self.tmp, "counter.db"), goal=3,
                                     busy_timeout=self.busy_timeout)
        self.sockets = []
        self.health_value = {"kind": "none", "ok": True}
        super().setUp()

    def get_app(self):
        self.feed = Feed(self.repository.state(), max_connections=self.max_connections,
                         ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                         per_address=self.per_address)
        # The change path, as websocketserver.wire joins it: commits reach the feed through the IOLoop.
        self.changes = Changes(self.io_loop)
        self.changes.listen(self.feed.on_change)
        self.metrics = Metrics(self.feed, lambda: self.health_value)
        self.changes.listen(self.metrics.on_change)
        self.repository.listen(self.changes.publish)
        return build_app(self.repository, self.feed, self.metrics, token=self.token,
                         health=lambda: self.health_value, throttle=self.throttle, lang=self.lang)

    def get_httpserver_options(self):
        return server_options()  # as the server listens

    def tearDown(self):
        for ws in self.sockets:
            ws.close()
        super().tearDown()
        self.repository.close()

    async def ws_connect(self, path="/websocket"):
        ws = await websocket_connect("ws://127.0.0.1:%d%s" % (self.get_http_port(), path))
        self.sockets.append(ws)
        return ws

    async def read_json(self, ws):
        msg = await ws.read_message()
        assert msg is not None, "socket closed"
        return json.loads(msg)

    def api(self, method, path, body=None, headers=AUTH):
        if body is None and method in ("POST", "PUT"):
            body = b""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        response = self.fetch(path, method=method, body=body, headers=headers, raise_error=False)
        return response.code, json.loads(response.body) if response.body else None


class PageTest(ServerTestCase):
    def test_page_has_the_count_in_the_html(self):
        """GET / is HTML with the current count already rendered."""
        self.repository.press()
        self.feed.state = self.repository.state()
        r = self.fetch("/")
        assert r.code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert b'id="count" class="count" aria-live="polite" aria-atomic="true">2<' in r.body
        assert b"Countdown to 3" in r.body

    def test_page_has_security_headers(self):
        """The page allows only our own scripts and styles and is not sniffed."""
        r = self.fetch("/")
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"

    def test_static_assets_and_icons_are_served(self):
        """The page's script, style and icons answer 200."""
        for path in ("/static/app.js", "/static/style.css", "/favicon.ico",
                     "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png"):
            assert self.fetch(path).code == 200, path

    def test_static_refuses_paths_outside_static(self):
        """Path traversal out of static/ gets nothing of ours."""
        for path in ("/static/../Repository.py", "/static/..%2fRepository.py",
                     "/static/%2e%2e/websocketserver.py", "/static//etc/passwd"):
            with ExpectLog("tornado", ".*", required=False):
                r = self.fetch(path)
            assert r.code in (403, 404), path
            assert b"sqlite" not in r.body.lower()

    def test_healthz(self):
        """/healthz answers 200 with the button's health."""
        code, body = self.api("GET", "/healthz")
        assert code == 200 and body["ok"] is True

    def test_healthz_reports_a_dead_button(self):
        """When the button thread is not counting, /healthz says ok: false with the reason."""
        self.health_value = {"kind": "gpio", "ok": False, "alive": False, "error": "thread died"}
        code, body = self.api("GET", "/healthz")
        assert body["ok"] is False and body["button"]["error"] == "thread died"


class ApiTest(ServerTestCase):
    def test_get_count(self):
        """GET /api/count returns count and goal without a token."""
        code, body = self.api("GET", "/api/count", headers={})
        assert code == 200 and body["count"] == 3 and body["goal"] == 3

    def test_press_stores_then_answers(self):
        """POST /api/press answers the new state, already in the database."""
        code, body = self.api("POST", "/api/press")
        assert code == 200 and body["count"] == 2
        assert self.repository.state().count == 2

    def test_press_wraps_at_zero(self):
        """Pressing at 0 goes back to the goal."""
        counts = [self.api("POST", "/api/press")[1]["count"] for _ in range(5)]
        assert counts == [2, 1, 0, 3, 2]

    def test_undo(self):
        """POST /api/undo reverts the latest press; 409 with nothing to undo."""
        self.api("POST", "/api/press")
        code, body = self.api("POST", "/api/undo")
        assert code == 200 and body["count"] == 3
        code, body = self.api("POST", "/api/undo")
        assert code == 409 and "undo" in body["error"]

    def test_put_count_and_goal(self):
        """PUT sets count and goal; lowering the goal below the count lowers the count."""
        code, body = self.api("PUT", "/api/count", {"goal": 10, "count": 8})
        assert code == 200 and (body["count"], body["goal"]) == (8, 10)
        code, body = self.api("PUT", "/api/count", {"goal": 5})
        assert (body["count"], body["goal"]) == (5, 5)

    def test_invalid_bodies_are_400_and_change_nothing(self):
        """Bad JSON, wrong types and out-of-range values get 400 with an error; nothing changes."""
        bad = [b"not json", b"[1, 2]", b"{}", b'{"count": "2"}', b'{"count": 1.5}',
               b'{"count": -1}', b'{"count": 4}', b'{"goal": 0}', b'{"goal": 1000001}',
               b'{"count": true}', b'{"cnt": 1}', b'{"count": null}', b"[" * 3000 + b"]" * 3000,
               b'{"goal": 1e400}', b'{"count": NaN}', b'{"count": 99999999999999999999999}']
        for body in bad:
            with ExpectLog("tornado.access", ".*", required=False):
                code, answer = self.api("PUT", "/api/count", body)
            assert code in (400, 413), body
            assert isinstance(answer["error"], str) and answer["error"], body
            assert self.repository.state().count == 3 and self.repository.state().goal == 3

    def test_huge_body_is_refused(self):
        """A body far bigger than any real request is refused and changes nothing."""
        with ExpectLog("tornado.access", ".*", required=False):
            code, body = self.api("PUT", "/api/count", b'{"count": 1, "x": "' + b"a" * 20000 + b'"}')
        assert code == 413 and "larger" in body["error"]
        assert self.repository.state().count == 3

    def test_missing_or_wrong_token_is_refused(self):
        """Writes without the right bearer token get 401/403 and change nothing."""
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic " + TOKEN},
                        {"Authorization": TOKEN}):
            for method, path, body in (("POST", "/api/press", b""), ("POST", "/api/undo", b""),
                                       ("PUT", "/api/count", b'{"count": 1}')):
                with ExpectLog("tornado.access", ".*", required=False):
                    code, answer = self.api(method, path, body, headers=headers)
                assert code in (401, 403), (headers, path)
                assert answer["error"]
        assert self.repository.state().count == 3

    def test_api_is_not_cached(self):
        """API answers say no-store."""
        r = self.fetch("/api/count")
        assert r.headers["Cache-Control"] == "no-store"


class NoTokenTest(ServerTestCase):
    token = None

    def test_write_api_is_off_without_token(self):
        """With no token configured every write is 403, whatever the request carries."""
        with ExpectLog("tornado.access", ".*", required=False):
            code, body = self.api("POST", "/api/press")
        assert code == 403 and "off" in body["error"]
        assert self.repository.state().count == 3


class FeedTest(ServerTestCase):
    @gen_test
    async def test_state_on_open(self):
        """A new socket gets the current state at once, marked as the initial state."""
        ws = await self.ws_connect()
        msg = await self.read_json(ws)
        assert (msg["count"], msg["goal"], msg["event"]) == (3, 3, "state")
        assert msg["version"] == self.feed.version

    @gen_test
    async def test_press_reaches_every_socket(self):
        """After an API press, all 50 open sockets get the new count as a press."""
        sockets = [await self.ws_connect() for _ in range(50)]
        for ws in sockets:
            await self.read_json(ws)
        response = await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert json.loads(response.body)["count"] == 2
        for ws in sockets:
            msg = await self.read_json(ws)
            assert (msg["count"], msg["event"]) == (2, "press")

    @gen_test
    async def test_undo_and_set_are_broadcast_without_press_event(self):
        """Undo and set reach sockets marked as such (no horn on the page)."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(ws))["event"] == "press"
        await self.http_client.fetch(self.get_url("/api/undo"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(ws))["event"] == "undo"
        await self.http_client.fetch(self.get_url("/api/count"), method="PUT", body=b'{"count": 1}', headers=AUTH)
        msg = await self.read_json(ws)
        assert (msg["event"], msg["count"]) == ("set", 1)

    @gen_test
    async def test_button_thread_press_goes_through_add_callback(self):
        """A press committed by another thread reaches sockets through the change path (add_callback)."""
        import threading
        ws = await self.ws_connect()
        await self.read_json(ws)

        def button_thread():
            self.repository.press(source="gpio")
        t = threading.Thread(target=button_thread)
        t.start()
        msg = await self.read_json(ws)
        t.join()
        assert (msg["count"], msg["event"]) == (2, "press")

    @gen_test
    async def test_late_older_state_is_not_shown(self):
        """An older commit whose callback arrives after a newer one does not overwrite it."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        older = State(count=2, goal=3, presses=1, serial=self.feed.state.serial + 1)
        newer = State(count=1, goal=3, presses=2, serial=self.feed.state.serial + 2)
        self.feed.send_updates(newer, "press")
        self.feed.send_updates(older, "press")
        assert self.feed.state.count == 1
        self.feed.send_updates(State(count=0, goal=3, presses=3, serial=newer.serial + 1), "press")
        counts = [(await self.read_json(ws))["count"] for _ in range(2)]
        assert counts == [1, 0]

    @gen_test
    async def test_client_messages_are_ignored(self):
        """What a client sends changes nothing and the socket stays open."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        ws.write_message('{"count": 0}')
        ws.write_message("press")
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(ws))["count"] == 2
        assert self.repository.state().count == 2

    @gen_test
    async def test_oversized_message_closes_only_that_socket(self):
        """A frame over the size limit closes its socket; the others still get updates."""
        good = await self.ws_connect()
        bad = await self.ws_connect()
        await self.read_json(good)
        await self.read_json(bad)
        bad.write_message("x" * (MAX_CLIENT_MESSAGE * 10))
        assert await bad.read_message() is None
        assert bad.close_code == 1009
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        assert (await self.read_json(good))["count"] == 2

    @gen_test
    async def test_closed_sockets_leave_the_waiter_set(self):
        """Closing sockets removes them from the feed; broadcasting then raises nothing."""
        sockets = [await self.ws_connect() for _ in range(10)]
        for ws in sockets:
            await self.read_json(ws)
        assert len(self.feed.waiters) == 10
        for ws in sockets:
            ws.close()
        await until(lambda: not self.feed.waiters)
        self.repository.press()  # its commit reaches the feed by the change path


class ConnectionCapTest(ServerTestCase):
    max_connections = 3

    @gen_test
    async def test_connections_beyond_the_cap_are_refused(self):
        """Past --max-connections a new viewer gets a clear 503; the others keep working."""
        sockets = [await self.ws_connect() for _ in range(3)]
        for ws in sockets:
            await self.read_json(ws)
        with ExpectLog("button.feed", "refused a viewer"):
            try:
                await self.ws_connect()
            except HTTPClientError as e:
                assert e.code == 503
            else:
                raise AssertionError("the fourth viewer was let in")
        await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        for ws in sockets:
            assert (await self.read_json(ws))["count"] == 2


class PropertyTest(ServerTestCase):
    def test_arbitrary_put_bodies_never_corrupt_state(self):
        """Whatever JSON a client PUTs, the answer is 200 with a valid state or 400 and nothing changed."""
        from hypothesis import given, settings
        from hypothesis import strategies as st

        values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                           st.floats(allow_nan=False), st.text(max_size=5), st.lists(st.integers(), max_size=3))
        bodies = st.one_of(
            st.dictionaries(st.sampled_from(["count", "goal", "x"]), values, max_size=3),
            values,
        )

        @settings(max_examples=80, deadline=None)
        @given(body=bodies)
        def check(body):
            before = self.repository.state()
            with ExpectLog("tornado.access", ".*", required=False):
                code, answer = self.api("PUT", "/api/count", json.dumps(body).encode())
            after = self.repository.state()
            if code == 200:
                assert 0 <= after.count <= after.goal <= 1_000_000
                assert (answer["count"], answer["goal"]) == (after.count, after.goal)
            else:
                assert code == 400 and answer["error"]
                assert (after.count, after.goal) == (before.count, before.goal)
        check()
