"""The one error shape on every route, HEAD like GET, and no client input making a 500 (CONTRACT.md, HTTP).

The routes are taken from make_app's router, so that a route added later is walked too:
a route whose pattern has a group needs its sample paths in ROUTE_SAMPLES, and the walk
fails until it has them. ``assert_canonical_error`` is the one check of an error answer:
JSON ``{"error": "<non-empty text>"}`` with a JSON content type (datasette's helper of
the same name). Every test class here also fails when anything logs an ERROR record (an
uncaught exception's traceback is one).
"""
import json
import logging
import re
import socket

from tornado.testing import ExpectLog
from tornado.web import RequestHandler

from tests.test_server import AUTH, ServerTestCase
from thebutton.devices import HookHandler, secret_hash

ICONS = ["/favicon.ico", "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png"]
# Patterns with a group (as the router holds them, ending in $): the paths each is walked with.
ROUTE_SAMPLES = {
    r"/static/(.*)$": ["/static/app.js", "/static/style.css", "/static/feed.js"],
    r"/(favicon\.ico|apple-touch-icon\.png|apple-touch-icon-precomposed\.png)$": ICONS,
    # Tornado's own, added with static_path (its favicon route comes before ours):
    r"/(favicon\.ico)$": ["/favicon.ico"],
    r"/(robots\.txt)$": ["/robots.txt"],
    r"/api/devices/([^/]+)$": ["/api/devices/Walk"],
    # A Pipedrive device's URL: it answers every write with {"ignored": ...}, so the walk presses nothing.
    r"/hook/([^/]*)$": ["/hook/walk-secret"],
}
BEARER_GET_PATHS = {"/api/screens", "/api/devices"}  # a GET that needs the token: 401 without, 200 with it
MISSING_FILES = {"/robots.txt"}  # a route of Tornado's with no file in static/: 404 in the one shape
# What the walk must at least reach: if reading the router found fewer routes, the walk is wrong.
CONTRACT_GET_PATHS = {"/", "/admin", "/history", "/static/app.js", *ICONS, "/metrics", "/healthz",
                      "/websocket", "/api/count", "/api/history", "/api/history.csv", "/api/rounds"}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
NOT_COMPARED = {"Date"}  # the only header a HEAD may answer differently from its GET

BAD_STATIC_PATHS = [
    "/static/%00", "/static/..%2f..%2fwebsocketserver.py", "/static/../Repository.py",
    "/static/..%2fRepository.py", "/static/%2e%2e/websocketserver.py", "/static//etc/passwd",
    "/static/", "/static/.", "/static/..", "/static/%ff", "/static/app.js%00.png", "/favicon.ico/x",
]


def assert_canonical_error(response, status, method="GET"):
    """``response`` is the one error shape with ``status``: JSON {"error": "<non-empty text>"}."""
    what = (method, response.effective_url, response.code, response.body[:120])
    assert response.code == status, what
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        (what, response.headers.get("Content-Type"))
    if method == "HEAD":
        assert response.body == b"", what
        return
    body = json.loads(response.body)
    assert isinstance(body, dict) and list(body) == ["error"], what
    assert isinstance(body["error"], str) and body["error"].strip(), what


def methods_of_class(handler_class):
    """The methods a handler class answers: those it defines, and HEAD where it has GET."""
    own = {m for m in METHODS if m != "HEAD" and getattr(handler_class, m.lower()) is not getattr(RequestHandler, m.lower())}
    return own | {"HEAD"} if "GET" in own else own


def header_list(response):
    return sorted((name, value) for name, value in response.headers.get_all() if name not in NOT_COMPARED)


class ErrorLogWatch(logging.Handler):
    """Keeps every record of ERROR or worse, with or without a traceback."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class ShapeTestCase(ServerTestCase):
    """A ServerTestCase that fails when anything logs an ERROR while it runs."""

    def setUp(self):
        self.errors = ErrorLogWatch()
        logging.getLogger().addHandler(self.errors)
        super().setUp()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            logging.getLogger().removeHandler(self.errors)
        logged = ["%s: %s%s" % (r.name, r.getMessage(), " (with a traceback)" if r.exc_info else "")
                  for r in self.errors.records]
        assert not logged, "client input was logged as an error:\n" + "\n".join(logged)

    def get_app(self):
        self.app = super().get_app()
        self.repository.add_device("Walk", "pipedrive", None, secret_hash("walk-secret"))
        return self.app

    def routes(self):
        """(pattern, handler class, sample paths) for every route of the app's router."""
        routes = []
        for rule in self.app.wildcard_router.rules:
            regex = rule.matcher.regex
            if regex.groups == 0:
                paths = [rule.matcher.reverse()]
            else:
                assert regex.pattern in ROUTE_SAMPLES, \
                    "route %s has a group: give the paths to walk it with in ROUTE_SAMPLES" % regex.pattern
                paths = ROUTE_SAMPLES[regex.pattern]
            for path in paths:
                assert regex.match(path), (regex.pattern, path)
            routes.append((regex.pattern, rule.target, paths))
        return routes

    def request(self, method, path, headers=None, body=None):
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        with ExpectLog("tornado.access", ".*", required=False), ExpectLog("tornado.general", ".*", required=False):
            return self.fetch(path, method=method, headers=headers, body=body, raise_error=False,
                              allow_nonstandard_methods=True, follow_redirects=False)

    def head_like_get(self, path, headers=None):
        """GET and HEAD ``path``; assert HEAD answers like GET without the body; the GET's answer."""
        got = self.request("GET", path, headers)
        head = self.request("HEAD", path, headers)
        assert head.code == got.code, (path, got.code, head.code)
        assert head.body == b"", path
        assert header_list(head) == header_list(got), path
        assert got.code < 500, (path, got.code, got.body[:200])
        if got.code >= 400:
            assert_canonical_error(got, got.code)
            assert_canonical_error(head, got.code, "HEAD")
        return got


class RouteWalkTest(ShapeTestCase):
    def test_the_walk_reaches_every_route_of_the_contract(self):
        """Reading the router finds the contract's GET routes (else the walk below proves nothing)."""
        walked = {path for _pattern, handler, paths in self.routes() for path in paths
                  if "GET" in methods_of_class(handler)}
        assert CONTRACT_GET_PATHS <= walked, CONTRACT_GET_PATHS - walked
        assert {"/api/press", "/api/undo", "/api/auth"} <= {p for _r, _h, paths in self.routes() for p in paths}

    def test_head_answers_like_get_on_every_get_route(self):
        """Every GET route, /websocket included: HEAD has GET's status and headers and no body."""
        for _pattern, handler, paths in self.routes():
            if "GET" not in methods_of_class(handler):
                continue
            for path in paths:
                got = self.head_like_get(path)
                if path == "/websocket":  # a plain GET, without Upgrade
                    assert_canonical_error(got, 400)
                elif path in MISSING_FILES:
                    assert_canonical_error(got, 404)
                elif path in BEARER_GET_PATHS:
                    assert_canonical_error(got, 401)
                    got = self.head_like_get(path, AUTH)
                    assert got.code == 200, (path, got.code, got.body[:200])
                else:
                    assert got.code == 200, (path, got.code, got.body[:200])
                    assert int(got.headers["Content-Length"]) == len(got.body) > 0, path

    def test_wrong_methods_are_405_json_with_allow(self):
        """Every route answers every method it lacks (GET and HEAD too) with 405 JSON and its Allow list."""
        for _pattern, handler, paths in self.routes():
            allowed = methods_of_class(handler)
            for method in METHODS + ("BREW",):
                if method in allowed:
                    continue
                for path in paths:
                    r = self.request(method, path, AUTH)
                    assert_canonical_error(r, 405, method)
                    assert set(r.headers["Allow"].split(", ")) == allowed, (method, path, r.headers["Allow"])
        state = self.repository.state()
        assert (state.count, state.goal, state.presses) == (3, 3, 0)

    def test_writes_without_a_token_are_401_json(self):
        """The methods a route takes besides GET, without the token: an error in the one shape, nothing changed."""
        for _pattern, handler, paths in self.routes():
            for method in sorted(methods_of_class(handler) - {"GET", "HEAD"}):
                for path in paths:
                    got = self.request(method, path, body=b'{"count": 0}')
                    if handler is HookHandler:  # no bearer: the secret is the key, and this is no deal won
                        assert got.code == 200 and "ignored" in json.loads(got.body), got.body
                        continue
                    assert_canonical_error(got, 401, method)
        state = self.repository.state()
        assert (state.count, state.goal, state.presses) == (3, 3, 0)

    def test_unknown_siblings_are_404_json(self):
        """A path next to or under any route (/api/nope, /admin/x, /static/nope.js...) is 404 JSON, whatever the method."""
        siblings = {"/api/nope", "/admin/x", "/history/x", "/static/nope.js", "/static", "/nope", "/api", "/api/"}
        for _pattern, _handler, paths in self.routes():
            siblings.update(path.rstrip("/") + "/nope" for path in paths)
        patterns = [pattern for pattern, _handler, _paths in self.routes()]
        for path in sorted(siblings):
            # Under a route's pattern (/static/(.*), /api/devices/(...)) the route's method check comes first.
            routed = any(re.match(pattern, path) for pattern in patterns)
            gets = [handler for pattern, handler, _paths in self.routes() if re.match(pattern, path)]
            assert_canonical_error(self.head_like_get(path), 405 if gets and "GET" not in methods_of_class(gets[0])
                                   else 404)
            for method in ("POST", "DELETE"):
                takes = bool(gets) and method in methods_of_class(gets[0])  # DELETE /api/devices/nope: no such device
                assert_canonical_error(self.request(method, path, AUTH), 405 if routed and not takes else 404, method)

    def test_bad_static_paths_are_400_or_404_json(self):
        """A NUL, a way out of static/, a folder, bad UTF-8: 400 or 404 in JSON, never 403 or 500, nothing of ours shown."""
        for path in BAD_STATIC_PATHS:
            got = self.head_like_get(path)
            assert got.code in (400, 404), (path, got.code)
            assert b"import" not in got.body and b"sqlite" not in got.body.lower(), path

    def test_a_range_past_the_end_is_416_json(self):
        """StaticFileHandler's 416 (an empty text/plain of its own) comes in the one shape, with Content-Range."""
        for path in ("/static/app.js", "/favicon.ico"):
            size = len(self.request("GET", path).body)
            got = self.head_like_get(path, {"Range": "bytes=%d-" % (size + 10)})
            assert_canonical_error(got, 416)
            assert got.headers["Content-Range"] == "bytes */%d" % size, path
            assert self.request("GET", path, {"Range": "bytes=0-9"}).code == 206, path

    def test_a_long_url_is_414_json(self):
        """A 10 KB request target (path or query) is 414 JSON on any route, HEAD alike."""
        for path in ("/" + "a" * 10240, "/api/count?x=" + "a" * 10240, "/static/" + "a" * 10240,
                     "/websocket?" + "a" * 10240):
            got = self.head_like_get(path)
            assert_canonical_error(got, 414)

    def test_large_headers_are_431_json(self):
        """70 KB of headers (one header, or many) is 431 JSON, past Tornado's own 64 KB default."""
        for headers in ({"X-Big": "a" * 70 * 1024}, {"X-Many-%d" % i: "b" * 60 for i in range(1100)}):
            for path in ("/", "/api/count", "/api/press", "/websocket"):
                got = self.head_like_get(path, headers)
                assert_canonical_error(got, 431)


class FeedHandshakeTest(ShapeTestCase):
    def handshake(self, **changes):
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        headers.update(changes)
        return {name: value for name, value in headers.items() if value is not None}

    def test_what_is_not_a_handshake_is_refused_in_json(self):
        """Tornado's plain-text refusals of a bad handshake (400, 426) come as JSON, HEAD like GET."""
        cases = [({}, 400), (self.handshake(Connection="keep-alive"), 400), (self.handshake(Upgrade="h2c"), 400),
                 (self.handshake(**{"Sec-WebSocket-Version": "8"}), 426),
                 (self.handshake(**{"Sec-WebSocket-Version": None}), 426),
                 (self.handshake(**{"Sec-WebSocket-Key": None}), 400)]
        for headers, status in cases:
            got = self.request("GET", "/websocket", headers)
            assert_canonical_error(got, status)
            if status == 426:
                assert got.headers["Sec-WebSocket-Version"] == "13"
        assert_canonical_error(self.request("HEAD", "/websocket", self.handshake()), 400, "HEAD")
        got = self.request("GET", "/websocket", self.handshake(), body=b"x" * 2_000_000)
        assert_canonical_error(got, 400)  # a body, even past Tornado's limit: answered before it is read
        assert not self.feed.waiters

    def test_a_real_handshake_still_opens_the_feed(self):
        """The checks made first let a real handshake through."""
        async def open_and_read():
            ws = await self.ws_connect()
            return await self.read_json(ws)
        assert self.io_loop.run_sync(open_and_read)["event"] == "state"


def raw_exchange(port, data, timeout=10):
    """Send ``data`` on a new connection to 127.0.0.1:port; the server's first answer (all of it, by its Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        answer = b""
        while True:
            head, blank, body = answer.partition(b"\r\n\r\n")
            if blank:
                length = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if data.startswith(b"HEAD ") or len(body) >= int(length[0]) if length else False:
                    return answer
            part = s.recv(65536)
            if not part:
                return answer
            answer += part


def parse_answer(answer):
    """(status, headers as a dict of lower-case names, body) of one raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# Tornado's HTTP parser refuses some requests before any handler exists, with this bare line
# (no headers, no body); that is below the application and the one shape cannot reach it.
PARSER_REFUSAL = b"HTTP/1.1 400 Bad Request\r\n\r\n"


class NoServerErrorTest(ShapeTestCase):
    def raw(self, data):
        port = self.get_http_port()
        with ExpectLog("tornado.access", ".*", required=False), ExpectLog("tornado.general", ".*", required=False):
            return self.io_loop.run_sync(lambda: self.io_loop.run_in_executor(None, raw_exchange, port, data))

    def test_odd_requests_are_answered_in_the_shape_never_500(self):
        """Control characters or ';' in Host, bad UTF-8, junk cookies, odd targets: an answer, no 5xx, no traceback."""
        requests = [
            b"GET / HTTP/1.1\r\nHost: a\x01b\r\n",  # Tornado 6.1 parses it; the CSP header then could not be set
            b"GET /admin HTTP/1.1\r\nHost: x; script-src *\r\n",
            b"GET /static/app.js HTTP/1.1\r\nHost: \x7f\r\n",
            b"GET /api/history?limit=%ff HTTP/1.1\r\nHost: x\r\n",
            b"GET /api/history?before=99999999999999999999999999 HTTP/1.1\r\nHost: x\r\n",
            b"GET /static/%ff%fe HTTP/1.1\r\nHost: x\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n",
            b"GET /api/count HTTP/1.1\r\nHost: x\r\nCookie: \x7f=\xff;;;=\r\n",
            b"GET http://other.example/api/count HTTP/1.1\r\nHost: x\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n",
            b"GET /static/app.js HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: never\r\nRange: bytes=9-2\r\n",
            b"GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\nContent-Length: 5\r\n\r\nhello",
            b"BREW /api/count HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.0\r\n",
        ]
        for request in requests:
            if not request.endswith(b"hello"):
                request += b"Connection: close\r\n\r\n"
            answer = self.raw(request)
            assert answer, ("no answer", request)
            if answer == PARSER_REFUSAL:
                continue
            status, headers, body = parse_answer(answer)
            assert status < 500, (request, answer[:300])
            if status >= 400:
                assert headers["content-type"].startswith("application/json"), (request, answer[:300])
                error = json.loads(body)["error"]
                assert isinstance(error, str) and error.strip(), request
            policy = headers.get("content-security-policy", "")
            assert "script-src *" not in policy and "\x01" not in policy, (request, policy)


def test_the_real_server_answers_414_and_431_in_json(server_factory):
    """``python websocketserver.py`` listens with server_options: a 10 KB URL is 414 and 70 KB of headers 431, in JSON."""
    server = server_factory()
    cases = [
        (b"GET /" + b"a" * 10240 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 414),
        (b"GET /api/count HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70 * 1024
         + b"\r\nConnection: close\r\n\r\n", 431),
        (b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70 * 1024
         + b"\r\nConnection: close\r\n\r\n", 431),
    ]
    for request, expected in cases:
        status, headers, body = parse_answer(raw_exchange(server.port, request))
        assert status == expected, (expected, status, body[:200])
        assert headers["content-type"].startswith("application/json"), headers
        if request.startswith(b"HEAD"):
            assert body == b"" and int(headers["content-length"]) > 0
        else:
            assert json.loads(body)["error"].strip()
            assert int(headers["content-length"]) == len(body)
    assert "Traceback" not in server.output()
