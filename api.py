"""The JSON API: reading the count, the write routes behind a bearer token, and /healthz.

Runs on the IOLoop thread. Writes go to the store in an executor thread; the store
commits and hands the change on to every listener (the feed of sockets among them), so a
handler only answers the committed state. Every error, 405 and 413 included, is
{"error": "..."}.
"""
from __future__ import annotations

import collections
import hmac
import json
import logging
import time
from typing import Callable, Deque, Dict, List, Optional

import tornado.web
from tornado.ioloop import IOLoop

from store import InvalidValue, NothingToUndo, State, StoreError, StoreUnavailable

log = logging.getLogger("button.api")

MAX_API_BODY = 4096  # bytes; a real body is a few dozen
MAX_READ_BODY = 1024 * 1024  # bytes read (and dropped) to answer 413 in words; more: cut off
NO_TORNADO_LIMIT = 1 << 62  # Tornado's own body limit, set out of reach: JsonHandler cuts first


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message goes to the client as {"error": message}."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(status)
        self.message = message
        self.headers = headers or {}


class Throttle:
    """Counts wrong tokens per client address; past ``limit`` in ``window`` seconds, that address waits.

    Used on the IOLoop thread only. Addresses are forgotten when their failures age out,
    and at most ``max_addresses`` are remembered, so a flood cannot grow it without bound.
    """

    def __init__(self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: Dict[str, Deque[float]] = {}

    def _recent(self, address: str) -> Optional[Deque[float]]:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def retry_after(self, address: str) -> Optional[int]:
        """Seconds this address must wait, or None when it may try."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, int(failures[0] + self.window - self.clock()) + 1)

    def fail(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= self.max_addresses:
                self._failures.pop(next(iter(self._failures)))  # the oldest address
            failures = self._failures[address] = collections.deque()
        failures.append(self.clock())
        if len(failures) > self.limit:
            failures.popleft()


@tornado.web.stream_request_body
class JsonHandler(tornado.web.RequestHandler):
    """Base of the JSON routes: one error shape, no caching, 405 for methods a route lacks.

    The body is streamed so that its limits are ours, on every route: a body up to
    MAX_API_BODY is kept, one past it gets 413 in words (read and dropped up to
    MAX_READ_BODY, so that the client can read the answer), never Tornado's bare 400.
    """

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def allowed_methods(self):
        base = tornado.web.RequestHandler
        return [m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
                if getattr(type(self), m.lower()) is not getattr(base, m.lower())]

    def prepare(self) -> None:
        # Before any auth or body check: a method the route lacks is 405, whoever asks.
        if self.request.method not in self.allowed_methods():
            raise ApiError(405, f"{self.request.method} is not allowed here",
                           {"Allow": ", ".join(self.allowed_methods())})
        self.check_access()
        self.chunks: List[bytes] = []
        self.received = 0
        # data_received cuts a body off at MAX_READ_BODY itself, with an answer in words.
        self.request.connection.set_max_body_size(NO_TORNADO_LIMIT)
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_API_BODY:
            raise ApiError(413, f"body larger than {MAX_API_BODY} bytes")

    def check_access(self) -> None:
        """Raise ApiError unless this request may go on (after the method check, before the body)."""

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received <= MAX_API_BODY:
            self.chunks.append(chunk)
        elif self.received > MAX_READ_BODY and not self._finished:
            # A chunked body that goes on and on: answer now; Tornado then closes the
            # connection instead of reading the rest.
            self.set_status(413)
            self.finish({"error": f"body larger than {MAX_API_BODY} bytes"})

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        for name, value in getattr(exc, "headers", {}).items():
            self.set_header(name, value)
        if status_code == 405 and not getattr(exc, "message", None):
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        message = getattr(exc, "message", None) or self._reason
        self.finish({"error": message})

    def send_json(self, body: dict) -> None:
        self.finish(json.dumps(body))


class CountReader(JsonHandler):
    def initialize(self, store, feed, token: Optional[str], throttle: Throttle) -> None:
        self.store = store
        self.feed = feed
        self.token = token
        self.throttle = throttle

    def state_body(self, state: State) -> dict:
        body = state.as_dict()
        body["title"] = self.feed.heading(state)
        if not self.feed.live:
            body["live"] = False  # the shared store is unreachable: this is the last state heard
        return body


class WriteHandler(CountReader):
    """A route that writes: the bearer token first, then a small JSON body, then the store."""

    def check_access(self) -> None:
        if self.request.method not in ("GET", "HEAD"):
            self.authorize()

    def authorize(self) -> None:
        """Raise unless the request carries the configured bearer token (429 after many wrong ones)."""
        if not self.token:
            raise ApiError(403, "the write API is off: start the server with --admin-token or BUTTON_ADMIN_TOKEN")
        address = self.request.remote_ip or "?"
        wait = self.throttle.retry_after(address)
        if wait is not None:
            raise ApiError(429, f"too many wrong tokens from {address}: try again in {wait} s",
                           {"Retry-After": str(wait)})
        header = self.request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "missing bearer token", {"WWW-Authenticate": 'Bearer realm="the-button"'})
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            self.throttle.fail(address)
            log.warning("wrong token from %s", address)
            raise ApiError(403, "wrong token")

    def json_body(self, empty_ok: bool = False) -> dict:
        """The request body as a JSON object; 413 or 400 in words otherwise."""
        if self.received > MAX_API_BODY:
            raise ApiError(413, f"body larger than {MAX_API_BODY} bytes")
        raw = b"".join(self.chunks)
        if not raw.strip():
            if empty_ok:
                return {}
            raise ApiError(400, "body must be a JSON object")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "body must be JSON such as {\"count\": 5}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    async def store_write(self, write: Callable[[], State], what: str) -> None:
        """Run a write off the IOLoop; answer only the committed state."""
        try:
            state = await IOLoop.current().run_in_executor(None, write)
        except InvalidValue as e:
            raise ApiError(400, str(e)) from None
        except StoreUnavailable as e:
            log.error("%s refused: %s", what, e)
            raise ApiError(503, f"not stored: {e}") from e
        except StoreError as e:
            log.error("%s not stored: %s", what, e)
            raise ApiError(503, f"not stored: {e}") from e
        self.send_json(self.state_body(state))


def unknown_fields(body: dict, known) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(map(str, unknown))}")


class CountHandler(WriteHandler):
    def get(self) -> None:
        self.send_json(self.state_body(self.feed.state))

    async def put(self) -> None:
        body = self.json_body()
        unknown_fields(body, ("count", "goal", "title"))
        if not body:
            raise ApiError(400, "give \"count\", \"goal\" and/or \"title\"")
        if "count" in body and body["count"] is None or "goal" in body and body["goal"] is None:
            raise ApiError(400, "count and goal must be whole numbers")
        if "title" in body and body["title"] is None:
            raise ApiError(400, 'title must be a string ("" for the default heading)')
        changes = {key: body[key] for key in ("count", "goal", "title") if key in body}
        await self.store_write(lambda: self.store.set(**changes), "set")


class PressHandler(WriteHandler):
    async def post(self) -> None:
        body = self.json_body(empty_ok=True)
        unknown_fields(body, ("note",))
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise ApiError(400, "note must be a string")
        if note is None:
            write = lambda: self.store.press(source="api")  # noqa: E731
        else:
            write = lambda: self.store.press(source="api", note=note)  # noqa: E731
        await self.store_write(write, "press")


class UndoHandler(WriteHandler):
    async def post(self) -> None:
        try:
            await self.store_write(self.store.undo, "undo")
        except NothingToUndo as e:
            raise ApiError(409, str(e)) from None


class AuthHandler(WriteHandler):
    """POST /api/auth: 200 when the bearer token is right; lets the admin page check it."""

    def post(self) -> None:
        self.send_json({"ok": True})


class HealthHandler(JsonHandler):
    def initialize(self, feed, health: Callable[[], dict], store_health: Callable[[], dict]) -> None:
        self.feed = feed
        self.health = health
        self.store_health = store_health

    def get(self) -> None:
        button = self.health()
        store = self.store_health()
        # Always 200 (as the contract says); "ok" is false when the button or the store is not working.
        self.send_json({"ok": bool(button.get("ok")) and bool(store.get("ok", True)), "button": button,
                        "store": store, "live": self.feed.live, "viewers": len(self.feed.waiters)})
