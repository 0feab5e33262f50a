"""The HTTP edges: only the contract's methods per route, one JSON error shape, big bodies, token guessing."""
import json
import select
import socket

from tornado.httpclient import HTTPClientError
from tornado.testing import ExpectLog, gen_test

from tests.test_server import AUTH, TOKEN, ServerTestCase
from thebutton.api import Throttle

WRONG = {"Authorization": "Bearer wrong-guess"}


class MethodTest(ServerTestCase):
    def test_other_methods_are_405_json_and_change_nothing(self):
        """PUT or GET /api/press, GET /api/undo, POST or DELETE /api/count and the like get 405 in JSON."""
        cases = [("PUT", "/api/press"), ("GET", "/api/press"), ("DELETE", "/api/press"),
                 ("GET", "/api/undo"), ("PUT", "/api/undo"), ("POST", "/api/count"),
                 ("DELETE", "/api/count"), ("PATCH", "/api/count"), ("POST", "/healthz"),
                 ("GET", "/api/auth")]
        for method, path in cases:
            body = b'{"count": 0}' if method in ("PUT", "POST", "PATCH") else None
            with ExpectLog("tornado.access", ".*", required=False):
                r = self.fetch(path, method=method, body=body, headers=AUTH, raise_error=False,
                               allow_nonstandard_methods=True)
            assert r.code == 405, (method, path, r.code)
            assert r.headers["Content-Type"].startswith("application/json"), (method, path)
            assert json.loads(r.body)["error"], (method, path)
            assert r.headers.get("Allow"), (method, path)
        state = self.repository.state()
        assert (state.count, state.presses) == (3, 0)

    def test_405_comes_before_auth(self):
        """A wrong method is 405 even without a token (not 401)."""
        with ExpectLog("tornado.access", ".*", required=False):
            code, body = self.api("GET", "/api/press", headers={})
        assert code == 405 and "not allowed" in body["error"]

    def test_press_body_may_be_empty_or_a_note_object(self):
        """POST /api/press with no body presses; a body that is not a JSON object is 400 and changes nothing."""
        code, body = self.api("POST", "/api/press", b"")
        assert code == 200 and body["count"] == 2
        for bad in (b"nope", b"[1]", b'"note"', b'{"x": 1}', b'{"note": 5}'):
            with ExpectLog("tornado.access", ".*", required=False):
                code, body = self.api("POST", "/api/press", bad)
            assert code == 400 and body["error"], bad
        assert self.repository.state().count == 2


class BodySizeTest(ServerTestCase):
    def test_bodies_too_large_get_413_in_json(self):
        """Bodies of 5 KB, 200 KB and 900 KB all get 413 with a JSON error, and nothing changes."""
        for size in (5_000, 200_000, 900_000):
            body = b'{"count": 1, "x": "' + b"a" * size + b'"}'
            for method, path in (("PUT", "/api/count"), ("POST", "/api/press")):
                with ExpectLog("tornado.access", ".*", required=False):
                    code, answer = self.api(method, path, body)
                assert code == 413, (size, path, code)
                assert "larger" in answer["error"]
        assert self.repository.state().count == 3

    def test_large_bodies_on_reading_routes_get_413_in_json(self):
        """A 200 KB body sent to a GET route (/healthz, /api/count, history, rounds, metrics) gets 413 in JSON."""
        body = b"a" * 200_000
        for path in ("/healthz", "/api/count", "/api/history", "/api/history.csv", "/api/rounds", "/metrics"):
            with ExpectLog("tornado.access", ".*", required=False):
                r = self.fetch(path, method="GET", body=body, raise_error=False, allow_nonstandard_methods=True)
            assert r.code == 413, (path, r.code, r.body[:80])
            assert r.headers["Content-Type"].startswith("application/json"), path
            assert "larger" in json.loads(r.body)["error"], path

    def chunked_press(self, chunks):
        """POST /api/press with a chunked body sent as ``chunks`` (a list of chunk lengths); the raw answer.

        Sending stops as soon as the server answers, as a real client's would.
        """
        port = self.get_http_port()

        def raw():
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"POST /api/press HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                          + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    for length in chunks:
                        if select.select([s], [], [], 0)[0]:
                            break  # answered already
                        s.sendall(b"%x\r\n" % length)
                        for start in range(0, length, 65536):
                            s.sendall(b"a" * min(65536, length - start))
                            if select.select([s], [], [], 0)[0]:
                                break
                        else:
                            s.sendall(b"\r\n")
                            continue
                        break
                    else:
                        s.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered and closed while the body was still coming
                data = b""
                while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                    part = s.recv(65536)
                    if not part:
                        break
                    data += part
                return data

        with ExpectLog("tornado.access", ".*", required=False):
            data = self.io_loop.run_sync(lambda: self.io_loop.run_in_executor(None, raw))
        head, _, body = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], json.loads(body)

    def test_chunked_body_too_large_gets_413(self):
        """A chunked body (no Content-Length) past the limit gets 413 in JSON: 8 KB, 3 MB in chunks, one 50 MB chunk."""
        for chunks in ([8000], [256 * 1024] * 12, [50 * 1024 * 1024]):
            status, answer = self.chunked_press(chunks)
            assert b" 413 " in status, (chunks[:1], status)
            assert "larger" in answer["error"]
        assert self.repository.state().count == 3


class ThrottleTest(ServerTestCase):
    def setUp(self):
        self.now = [1000.0]
        self.throttle = Throttle(clock=lambda: self.now[0])  # a clock the test moves
        super().setUp()

    def test_more_than_ten_wrong_tokens_a_minute_get_429(self):
        """Ten wrong tokens get 403; then even the right token from that address gets 429 with Retry-After."""
        with ExpectLog("button.api", "wrong token", required=False), \
                ExpectLog("tornado.access", ".*", required=False):
            codes = [self.api("POST", "/api/press", headers=WRONG)[0] for _ in range(10)]
            assert codes == [403] * 10
            r = self.fetch("/api/press", method="POST", body=b"", headers=AUTH, raise_error=False)
        assert r.code == 429 and int(r.headers["Retry-After"]) > 0
        assert "too many" in json.loads(r.body)["error"]
        assert self.repository.state().presses == 0
        self.now[0] += 61  # a minute later the address may try again
        code, body = self.api("POST", "/api/press")
        assert code == 200 and body["count"] == 2

    def test_a_right_token_from_another_address_still_works(self):
        """Locking out one address leaves every other address free."""
        for _ in range(11):
            self.throttle.fail("10.9.9.9")
        assert self.throttle.retry_after("10.9.9.9") is not None
        code, body = self.api("POST", "/api/press")
        assert code == 200 and body["count"] == 2

    def test_throttle_memory_is_bounded(self):
        """A flood of addresses never holds more than max_addresses."""
        throttle = Throttle(max_addresses=50, clock=lambda: self.now[0])
        for i in range(1000):
            throttle.fail("10.0.%d.%d" % (i // 256, i % 256))
        assert len(throttle._failures) <= 50


class RefusalTest(ServerTestCase):
    max_connections = 1

    @gen_test
    async def test_full_feed_refuses_with_a_readable_json_503(self):
        """A viewer past the limit gets 503 with Retry-After and a JSON reason, not an HTML page."""
        ws = await self.ws_connect()
        await self.read_json(ws)
        with ExpectLog("button.feed", "refused a viewer"):
            try:
                await self.ws_connect()
            except HTTPClientError as e:
                assert e.code == 503
                assert e.response.headers["Content-Type"].startswith("application/json")
                assert e.response.headers["Retry-After"]
                assert "too many viewers" in json.loads(e.response.body)["error"]
            else:
                raise AssertionError("a viewer past the limit was let in")


class WriteBodiesTest(ServerTestCase):
    def test_undo_and_auth_take_no_body_or_a_json_object(self):
        """POST /api/undo and /api/auth: no body or a JSON object; garbage or another JSON value is 400, nothing changed."""
        assert self.api("POST", "/api/press")[0] == 200
        for path in ("/api/undo", "/api/auth"):
            for body in (b"garbage", b"[1]", b'"undo"', b"42", b"{", b"null"):
                code, answer = self.api("POST", path, body)
                assert code == 400 and "JSON object" in answer["error"], (path, body)
                assert self.repository.state().count == 2, (path, body)
        assert self.api("POST", "/api/auth", {})[0] == 200 and self.api("POST", "/api/auth")[0] == 200
        code, answer = self.api("POST", "/api/undo", {})
        assert code == 200 and answer["count"] == 3
