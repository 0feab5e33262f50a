"""The Button's server: the countdown page, the live WebSocket feed, the write API and main().

Threads: the IOLoop thread runs every handler and every write to a socket. The
button thread (see Button.py) stores a press through the Repository and then hands
the committed state to the IOLoop with ``IOLoop.add_callback``; that is its only
contact with Tornado. HTTP writes run the SQLite work in an executor thread.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import json
import logging
import os
import signal
import struct
import sys
from typing import Callable, Optional, Set

import tornado.web
import tornado.websocket
from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.options import define, options

from Button import KINDS, PULLS, ButtonError, make_button
from Repository import (
    MAX_GOAL,
    InvalidValue,
    NothingToUndo,
    Repository,
    RepositoryError,
    State,
    default_path,
)

log = logging.getLogger("button.server")

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_DIR = os.path.join(HERE, "static")
MAX_API_BODY = 4096  # bytes; a PUT body is a few dozen
MAX_CLIENT_MESSAGE = 1024  # bytes; the feed is read-only, a bigger frame closes that socket
MAX_BUFFERED = 64 * 1024  # bytes a reader may leave unread (beyond the kernel's) before it is dropped

define("port", default=8888, type=int, help="HTTP and WebSocket port (below 1024 needs root or CAP_NET_BIND_SERVICE)")
define("address", default="", help='bind address; "" listens on every interface, so anyone on the LAN can open the page; 127.0.0.1 keeps it to this machine')
define("db", default=default_path(), help="SQLite file that keeps the count; created on first run")
define("goal", default=20, type=int, help="the goal a fresh database starts at (an existing database keeps its own)")
define("button", default="auto", help="press source: auto (GPIO, else keyboard on a terminal, else none), gpio, keyboard, none")
define("pin", default=11, type=int, help="physical (BOARD) pin number of the button; 11 is GPIO17")
define("pull", default="up", help="up: button wired to ground, pressed = LOW; down: button wired to 3.3 V, pressed = HIGH")
define("admin_token", default=None, help="bearer token for the write API (default: env BUTTON_ADMIN_TOKEN); unset = write API disabled")
define("title", default=None, help='page heading (default: "Countdown to <goal>")')
define("max_connections", default=1000, type=int, help="most WebSocket viewers at once; more are refused with 503")


class Feed:
    """The open sockets and the latest committed state. Used on the IOLoop thread only."""

    def __init__(self, state: State, title: Optional[str] = None, max_connections: int = 1000,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self.waiters: Set["FeedSocket"] = set()
        self.state = state
        self.title = title
        self.max_connections = max_connections
        self.max_buffered = max_buffered
        self.version = ""
        self.ping_interval = 0.0  # seconds; 0 = no pings. make_app sets both.
        self.ping_timeout = 0.0
        self._pinger: Optional[PeriodicCallback] = None
        self._tick = 0  # the slot the next ping_tick pings
        self._next_slot = 0  # the slot the next viewer joins

    def add(self, waiter: "FeedSocket") -> None:
        waiter.ping_slot = self._next_slot
        self._next_slot = (self._next_slot + 1) % PING_SLOTS
        self.waiters.add(waiter)
        if self._pinger is None and self.ping_interval > 0:
            self._pinger = PeriodicCallback(self.ping_tick, self.ping_interval * 1000 / PING_SLOTS)
            self._pinger.start()

    def ping_tick(self, now: Optional[float] = None) -> None:
        """Ping one slot of the sockets and drop those silent for longer than ping_timeout.

        One timer for every socket, rather than a task per socket (Tornado's way). Each
        tick pings a twentieth of them, so that with thousands of viewers the pings and
        their pongs come as a trickle, not as one burst that a press would wait behind.
        Every socket is pinged once per ping_interval; the frame is built once.
        """
        if not self.waiters:
            self.stop_pinging()
            return
        if now is None:
            now = IOLoop.current().time()
        slot = self._tick
        self._tick = (self._tick + 1) % PING_SLOTS
        late = now - self.ping_timeout if self.ping_timeout > 0 else None
        for waiter in list(self.waiters):
            due = waiter.pong_due
            if due and late is not None and due <= late:
                log.info("dropped a viewer that stopped answering pings (%s)", waiter.request.remote_ip)
                waiter.drop()
            elif waiter.ping_slot == slot:
                if not due:
                    waiter.pong_due = now  # the oldest ping not yet answered
                waiter.send_frame(PING_FRAME)

    def heading(self) -> str:
        return self.title or f"Countdown to {self.state.goal}"

    def message(self, event: str) -> str:
        """The state as the JSON text every socket gets; event is state, press, undo or set."""
        body = self.state.as_dict()
        body.update(event=event, title=self.heading(), version=self.version)
        return json.dumps(body)

    def full(self) -> bool:
        return len(self.waiters) >= self.max_connections

    def send_updates(self, state: State, event: str) -> None:
        """Send a newly committed state to every open socket, without waiting on any of them.

        The WebSocket frame is built once and the same bytes go to every socket;
        there is no backpressure: a socket whose unsent data passes max_buffered is
        dropped rather than allowed to slow the others or to grow memory.
        """
        if state.serial < self.state.serial:
            return  # an older commit whose callback arrived late: the screens have newer
        self.state = state
        frame = text_frame(self.message(event).encode())
        for waiter in list(self.waiters):
            waiter.send_frame(frame)

    def stop_pinging(self) -> None:
        if self._pinger is not None:
            self._pinger.stop()
            self._pinger = None

    def close_all(self) -> None:
        self.stop_pinging()
        for waiter in list(self.waiters):
            waiter.close(1001, "server shutting down")


class SecurityHeaders:
    """Headers for everything a browser renders: our own scripts, styles and sounds only."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        host = self.request.host
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"media-src 'self' data: blob:; connect-src 'self' ws://{host} wss://{host}; "
            "object-src 'none'; base-uri 'none'; form-action 'none'",
        )


class MainHandler(SecurityHeaders, tornado.web.RequestHandler):
    def initialize(self, feed: Feed) -> None:
        self.feed = feed

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        state = self.feed.state
        self.render(
            "default.html",
            state=state,
            title=self.feed.heading(),
            version=self.feed.version,
            done=(state.goal - state.count) / state.goal,
        )


class StaticHandler(SecurityHeaders, tornado.web.StaticFileHandler):
    pass


class FeedSocket(tornado.websocket.WebSocketHandler):
    """One viewer of the live feed. Read-only: what a client sends is ignored."""

    pong_due = 0.0  # when the oldest unanswered ping went out (Feed.ping_tick); 0 = none
    ping_slot = 0  # which of Feed's PING_SLOTS ticks pings this socket

    def initialize(self, feed: Feed) -> None:
        self.feed = feed

    def prepare(self) -> None:
        if self.feed.full():
            log.warning("refused a viewer: %d connections is the limit", self.feed.max_connections)
            raise ApiError(503, f"too many viewers (limit {self.feed.max_connections})")

    def get_compression_options(self) -> None:
        # Off: send_frame writes ready-made uncompressed frames shared by every socket.
        return None

    def check_origin(self, origin: str) -> bool:
        # The feed is public to whoever can reach the server and carries no write,
        # so a page from any origin may watch it.
        return True

    def open(self) -> None:
        self.stream = self.ws_connection.stream
        # IOStream refuses writes past this (StreamBufferFullError): the stuck-reader limit.
        self.stream.max_write_buffer_size = self.feed.max_buffered
        # The handshake is over and Tornado never uses the HTTP connection objects
        # again; letting go of them saves about 2 KB a viewer (see bench/README.md).
        self.request.connection = self.request.server_connection = None
        self.feed.add(self)
        self.send_frame(text_frame(self.feed.message("state").encode()))

    def send_frame(self, frame: bytes) -> None:
        """Queue a ready-made frame; drop this socket if it is closed or has stopped reading."""
        connection = self.ws_connection
        if connection is None or connection.is_closing():  # closed, or its close handshake began
            self.feed.waiters.discard(self)
            return
        stream = self.stream
        try:
            if not stream.writing():
                # Fast path: nothing queued, so hand the frame straight to the kernel; only
                # a part the socket cannot take now goes through IOStream's buffer.
                try:
                    sent = stream.socket.send(frame)
                except BlockingIOError:
                    sent = 0
                if sent == len(frame):
                    return
                frame = frame[sent:]
            stream.write(frame)
        except (StreamClosedError, OSError):
            self.feed.waiters.discard(self)
        except StreamBufferFullError:
            log.warning("dropped a viewer that stopped reading (%s)", self.request.remote_ip)
            self.drop()

    def drop(self) -> None:
        """Close the connection at once: a close frame would only queue behind unread data."""
        self.feed.waiters.discard(self)
        self.stream.close()

    def on_pong(self, data: bytes) -> None:
        self.pong_due = 0.0

    def on_message(self, message) -> None:
        pass

    def on_close(self) -> None:
        self.feed.waiters.discard(self)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


PING_SLOTS = 20  # a ping interval is this many ticks, each pinging one slot of the sockets
PING_FRAME = b"\x89\x00"  # an unmasked ping with no payload (RFC 6455 5.5.2)


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message goes to the client as {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.message = message


class JsonHandler(tornado.web.RequestHandler):
    """Base of the JSON routes: one error shape, no caching."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "message", None) or self._reason
        self.finish({"error": message})

    def send_json(self, body: dict) -> None:
        self.finish(json.dumps(body))


class CountHandler(JsonHandler):
    def initialize(self, repository: Repository, feed: Feed, token: Optional[str]) -> None:
        self.repository = repository
        self.feed = feed
        self.token = token

    def get(self) -> None:
        self.send_json(self.feed.state.as_dict())

    def authorize(self) -> None:
        """Raise unless the request carries the configured bearer token."""
        if not self.token:
            raise ApiError(403, "the write API is off: start the server with --admin-token or BUTTON_ADMIN_TOKEN")
        header = self.request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            self.set_header("WWW-Authenticate", 'Bearer realm="the-button"')
            raise ApiError(401, "missing bearer token")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(403, "wrong token")

    async def store(self, write: Callable[[], State], event: str) -> None:
        """Run a write off the IOLoop; broadcast and answer only the committed state."""
        try:
            state = await IOLoop.current().run_in_executor(None, write)
        except RepositoryError as e:
            log.error("%s not stored: %s", event, e)
            raise ApiError(503, f"not stored: {e}") from e
        self.feed.send_updates(state, event)
        self.send_json(state.as_dict())

    async def put(self) -> None:
        self.authorize()
        if len(self.request.body) > MAX_API_BODY:
            raise ApiError(413, f"body larger than {MAX_API_BODY} bytes")
        try:
            body = json.loads(self.request.body)
        except (ValueError, RecursionError):
            raise ApiError(400, "body must be JSON such as {\"count\": 5}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object with \"count\" and/or \"goal\"")
        unknown = sorted(set(body) - {"count", "goal"})
        if unknown:
            raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
        if not body:
            raise ApiError(400, "give \"count\" and/or \"goal\"")
        for key in body:
            value = body[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ApiError(400, f"{key} must be a whole number")
        count, goal = body.get("count"), body.get("goal")
        try:
            # Checked here as well so that a bad value never reaches the executor.
            if goal is not None and not 1 <= goal <= MAX_GOAL:
                raise InvalidValue(f"goal must be a whole number from 1 to {MAX_GOAL:,}")
            if count is not None and count < 0:
                raise InvalidValue("count must be a whole number of 0 or more")
            await self.store(lambda: self.repository.set(count=count, goal=goal), "set")
        except InvalidValue as e:
            raise ApiError(400, str(e)) from None


class PressHandler(CountHandler):
    async def post(self) -> None:
        self.authorize()
        await self.store(lambda: self.repository.press(source="api"), "press")


class UndoHandler(CountHandler):
    async def post(self) -> None:
        self.authorize()
        try:
            await self.store(self.repository.undo, "undo")
        except NothingToUndo as e:
            raise ApiError(409, str(e)) from None


class HealthHandler(JsonHandler):
    def initialize(self, feed: Feed, health: Callable[[], dict]) -> None:
        self.feed = feed
        self.health = health

    def get(self) -> None:
        button = self.health()
        # Always 200 (as the contract says); "ok" is false when the button is not counting.
        self.send_json({"ok": bool(button.get("ok")), "button": button,
                        "viewers": len(self.feed.waiters)})


def page_version() -> str:
    """A short hash of the page and its assets: open pages reload when it changes."""
    digest = hashlib.sha256()
    files = [os.path.join(HERE, "default.html")]
    for root, _dirs, names in sorted(os.walk(STATIC_DIR)):
        files.extend(os.path.join(root, name) for name in sorted(names))
    for path in files:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def make_app(
    repository: Repository,
    feed: Feed,
    token: Optional[str] = None,
    health: Optional[Callable[[], dict]] = None,
    ping_interval: float = 20.0,
    ping_timeout: float = 10.0,
) -> tornado.web.Application:
    """The Tornado application: the page, its assets, the feed and the JSON API."""
    if health is None:
        health = lambda: {"kind": "none", "ok": True}  # noqa: E731
    feed.version = page_version()
    # The feed pings its sockets itself with one timer; Tornado's own pinger (a task
    # per socket) stays off.
    feed.ping_interval, feed.ping_timeout = ping_interval, ping_timeout
    api = dict(repository=repository, feed=feed, token=token)
    icons = r"/(favicon\.ico|apple-touch-icon\.png|apple-touch-icon-precomposed\.png)"
    return tornado.web.Application(
        [
            (r"/", MainHandler, dict(feed=feed)),
            (icons, StaticHandler, dict(path=STATIC_DIR)),
            (r"/websocket", FeedSocket, dict(feed=feed)),
            (r"/api/count", CountHandler, api),
            (r"/api/press", PressHandler, api),
            (r"/api/undo", UndoHandler, api),
            (r"/healthz", HealthHandler, dict(feed=feed, health=health)),
        ],
        template_path=HERE,
        static_path=STATIC_DIR,
        static_handler_class=StaticHandler,
        websocket_max_message_size=MAX_CLIENT_MESSAGE,
    )


class StartupError(Exception):
    """A reason not to start, said in one line."""


def _raise_fd_limit() -> None:
    """Every viewer is a file descriptor: lift the soft limit to the hard one."""
    try:
        import resource
    except ImportError:  # not on every platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(repository: Repository, button, token: Optional[str]) -> None:
    """Listen, run the button, and return after SIGTERM or SIGINT."""
    loop = IOLoop.current()
    feed = Feed(repository.state(), title=options.title, max_connections=options.max_connections)
    app = make_app(repository, feed, token=token, health=button.health)
    try:
        server = app.listen(options.port, options.address, max_body_size=64 * 1024)
    except OSError as e:
        where = f"{options.address or '*'}:{options.port}"
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = " (another program, or another copy of The Button, uses that port; pick one with --port)"
        elif e.errno == errno.EACCES:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE; see deploy/)"
        raise StartupError(f"cannot listen on {where}: {e.strerror}{hint}") from e

    def on_press() -> None:
        # Runs in the button thread: store first, then hand the state to the IOLoop.
        try:
            state = repository.press(source=button.name)
        except RepositoryError as e:
            log.error("button press NOT stored: %s", e)
            return
        loop.add_callback(feed.send_updates, state, "press")

    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(sig, stop.set)
    button.start(on_press)
    shown = options.address or "localhost"
    log.info("The Button: count %d of %d, page at http://%s:%d/ (write API %s)",
             feed.state.count, feed.state.goal, shown, options.port, "on" if token else "off")
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        server.stop()
        feed.close_all()
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=2)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time")


def _bad_option(argv) -> Optional[str]:
    """The first --name=value in argv whose value does not parse, as "--name"."""
    for arg in argv[1:]:
        name, _, value = arg.lstrip("-").partition("=")
        option = options._options.get(name.replace("_", "-"))
        if option is None:
            continue
        try:
            option.parse(value)
        except ValueError:
            return "--" + name
    return None


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    try:
        options.parse_command_line(argv)
    except tornado.options.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a value of the wrong type, e.g. --port=eighty
        print(f"error: {_bad_option(argv) or 'bad option value'}: {e}", file=sys.stderr)
        return 2
    if options.button not in KINDS:
        print(f"error: --button must be one of {', '.join(KINDS)}, not {options.button!r}", file=sys.stderr)
        return 2
    if options.pull not in PULLS:
        print(f"error: --pull must be one of {', '.join(PULLS)}, not {options.pull!r}", file=sys.stderr)
        return 2
    if options.max_connections < 1:
        print("error: --max-connections must be at least 1", file=sys.stderr)
        return 2
    token = options.admin_token or os.environ.get("BUTTON_ADMIN_TOKEN") or None
    _raise_fd_limit()
    try:
        repository = Repository(options.db, goal=options.goal)
    except (RepositoryError, InvalidValue) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        button = make_button(options.button, options.pin, options.pull)
    except ButtonError as e:
        repository.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(repository, button, token))
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        button.stop()  # GPIO.cleanup() on every way out
        repository.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
