"""The JSON API: reading the count, the write routes behind a bearer token, and /healthz.

Runs on the IOLoop thread. Writes go to the store in an executor thread; the store
commits and hands the change on to every listener (the feed of sockets among them), so a
handler only answers the committed state. Every error, 405 and 413 included, is
{"error": "..."}.
"""
from __future__ import annotations

import collections
import hmac
import logging
import time
from typing import Any, Callable, Deque, Dict, Optional, Sequence

from tornado.ioloop import IOLoop

from thebutton.feed import Feed
from thebutton.hosts import client_key
from thebutton.store import InvalidValue, State, Store
from thebutton.validation import check_name
from thebutton.web import ApiError, JsonHandler, error_of

log = logging.getLogger("button.api")

class Throttle:
    """Counts wrong tokens per client address; past ``limit`` in ``window`` seconds, that address waits.

    Used on the IOLoop thread only. Callers count by ``client_key`` (IPv6 by /64).
    Addresses are forgotten when their failures age out,
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


class StateHandler(JsonHandler):
    """Base of the routes of the count: they answer the state, and those that write need the token."""

    def initialize(self, store: Store, feed: Feed, token: Optional[str], throttle: Throttle) -> None:
        self.store = store
        self.feed = feed
        self.token = token
        self.throttle = throttle

    def state_body(self, state: State) -> Dict[str, Any]:
        body = state.as_dict()
        body["title"] = self.feed.heading(state)
        if not self.feed.live:
            body["live"] = False  # the shared store is unreachable: this is the last state heard
        return body


    def check_access(self) -> None:
        if self.request.method not in ("GET", "HEAD"):
            self.authorize()

    def authorize(self) -> None:
        """Raise unless the request carries the configured bearer token (429 after many wrong ones)."""
        if not self.token:
            raise ApiError(403, "the write API is off: start the server with --admin-token or BUTTON_ADMIN_TOKEN")
        address = client_key(self.request.remote_ip or "?")
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

    async def store_write(self, write: Callable[[], State], what: str) -> None:
        """Run a write off the IOLoop; answer only the committed state."""
        try:
            state = await IOLoop.current().run_in_executor(None, write)
        except Exception as e:  # error_of re-raises what is not a store's error
            raise error_of(e, what) from None
        self.send_json(self.state_body(state))


def unknown_fields(body: Dict[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(map(str, unknown))}")


class CountHandler(StateHandler):
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


class PressHandler(StateHandler):
    async def post(self) -> None:
        body = self.json_body(empty_ok=True)
        unknown_fields(body, ("note", "by"))
        note, by = body.get("note"), body.get("by")  # the store checks them (thebutton/validation.py)
        await self.store_write(lambda: self.store.press(source="api", note=note, by=by), "press")


class UndoHandler(StateHandler):
    async def post(self) -> None:
        self.json_body(empty_ok=True)  # no body or a JSON object; "garbage" is a client's mistake: 400
        await self.store_write(self.store.undo, "undo")


class AuthHandler(StateHandler):
    """POST /api/auth: 200 when the bearer token is right; lets the admin page check it."""

    def post(self) -> None:
        self.json_body(empty_ok=True)
        self.send_json({"ok": True})


class ScreensHandler(StateHandler):
    """GET /api/screens: the screens this server has seen (thebutton/screens.py); bearer, like the writes."""

    def check_access(self) -> None:
        self.authorize()  # where the TVs are and what they run is for the people who run it

    def get(self) -> None:
        self.send_json({"screens": self.feed.screens.listing(self.feed.version)})


class ScreenCommandHandler(StateHandler):
    """POST /api/screens/reload and /identify {"screen": NAME or "*"}: sent to that screen's pages."""

    def initialize(self, command: str, **api: Any) -> None:  # type: ignore[override]
        super().initialize(**api)
        self.command = command

    def post(self) -> None:
        body = self.json_body()
        unknown_fields(body, ("screen",))
        screen = body.get("screen")
        if screen != "*":
            try:
                screen = check_name(screen, "screen")
            except InvalidValue as e:
                raise ApiError(400, f'{e} (or "*" for every screen)') from None
            if not self.feed.screens.connected(screen):
                raise ApiError(404, "no screen of that name is connected to this server")
        self.send_json({"sent": self.feed.command(screen, self.command)})


class HealthHandler(JsonHandler):
    def initialize(self, feed: Feed, health: Callable[[], Dict[str, Any]], store: Store) -> None:
        self.feed = feed
        self.health = health
        self.store = store

    def get(self) -> None:
        button = self.health()
        store = self.store.health()
        full = self.feed.full()
        # Always 200 (as the contract says); "ok" is false when the button or the store is not
        # working, or while the feed is full (a TV that opens the page now gets no count).
        body = {"ok": bool(button.get("ok")) and bool(store.get("ok", True)) and not full, "button": button,
                "store": store, "live": self.feed.live, "viewers": len(self.feed.waiters),
                "max_viewers": self.feed.max_connections}
        if full:
            body["error"] = f"the feed is full: {self.feed.max_connections} viewers (--max-connections)"
        if store.get("warning"):  # e.g. Redis lost its data: the count works, but someone should look
            body["warning"] = store["warning"]
        self.send_json(body)
