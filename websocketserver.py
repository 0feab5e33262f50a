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
import json
import logging
import os
import re
import signal
import struct
import sys
from typing import Callable, List, Optional, Set

import tornado.options
import tornado.web
import tornado.websocket
from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.options import define, options

from api import ApiError, AuthHandler, CountHandler, HealthHandler, PressHandler, Throttle, UndoHandler
from Button import KINDS, PULLS, ButtonError, make_button
from history import HistoryCsvHandler, HistoryHandler, RoundsHandler
from Repository import Repository, default_path
from store import Change, InvalidValue, State, StoreError

log = logging.getLogger("button.server")

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_DIR = os.path.join(HERE, "static")
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
define("title", default=None, help='page heading when none was set through the API or /admin (default: "Countdown to <goal>")')
define("max_connections", default=1000, type=int, help="most WebSocket viewers at once; more are refused with 503")
define("ping_interval", default=20.0, type=float, help="seconds (more than 0, at most 24) between heartbeats to each page (and pings); a page that hears nothing for 1.25x this reconnects, so within 30 s")
define("night", default="", help='local hours when pages dim, e.g. "19:00-07:00"; "" = never (the count always stays visible)')
define("round", default="none", help="none, daily, weekly (from Monday) or monthly: a new round (count = goal) starts at each period, local time")
define("webhook", default="", help="URL(s), comma-separated, that get a JSON POST after each change (Slack/Teams incoming webhooks); \"\" = off")
define("mqtt", default="", help="mqtt://[user[:password]@]host[:port] of an MQTT broker to publish the state to; \"\" = off")
define("mqtt_topic", default="the-button", help="MQTT base topic: <topic>/state, <topic>/availability, <topic>/press, <topic>/undo")
define("mqtt_discovery", default="homeassistant", help='Home Assistant discovery prefix; "" = no discovery configs')
define("mqtt_commands", default=False, type=bool, help="obey <topic>/press and <topic>/undo: then anyone who may publish to the broker can press")
define("store", default="", help="redis://[:password@]host[:port][/db] to share one count among several servers; \"\" = the SQLite file of --db")
define("store_key", default="the-button", help="key prefix in Redis; servers with the same Redis and key share one count")


class Changes:
    """The one path of committed changes: from any thread to the IOLoop, then to each listener.

    A store calls ``publish`` after each commit, from whichever thread committed (the
    button thread, an executor thread, the Redis store's thread); ``fire`` then runs on
    the IOLoop and hands the change to every listener in turn (the feed of sockets,
    metrics, webhooks, MQTT). A listener must not block, and one that raises is logged
    and does not stop the others.
    """

    def __init__(self, loop: Optional[IOLoop] = None) -> None:
        self.loop = loop or IOLoop.current()
        self.listeners: List[Callable[[Change], None]] = []

    def listen(self, listener: Callable[[Change], None]) -> None:
        self.listeners.append(listener)

    def publish(self, change: Change) -> None:
        # Any thread: the IOLoop's add_callback is the only thread-safe door into it.
        self.loop.add_callback(self.fire, change)

    def fire(self, change: Change) -> None:
        # The IOLoop thread.
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:  # one listener's fault must not keep the change from the others
                log.exception("a listener failed on a %s change", change.event)


class Feed:
    """The open sockets and the latest committed state. Used on the IOLoop thread only."""

    def __init__(self, state: State, title: Optional[str] = None, max_connections: int = 1000,
                 max_buffered: int = MAX_BUFFERED, night: str = "") -> None:
        self.waiters: Set["FeedSocket"] = set()
        self.state = state
        self.title = title
        self.max_connections = max_connections
        self.max_buffered = max_buffered
        self.night = night  # "HH:MM-HH:MM" when pages dim, or ""
        self.live = True  # False while the store cannot keep the count current
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
        Every socket is pinged once per ping_interval; the frame is built once. With the
        ping goes a heartbeat the page can see (pings are invisible to page scripts), in
        the same send: a page that hears nothing for a while knows its connection is dead.
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
                waiter.send_frame(PING_AND_BEAT)

    def heading(self, state: Optional[State] = None) -> str:
        """The page heading: the stored title, else --title, else "Countdown to <goal>"."""
        state = state or self.state
        return state.title or self.title or f"Countdown to {state.goal}"

    def message(self, event: str, **extra) -> str:
        """The state as the JSON text every socket gets; event is state, press, undo, set or round."""
        body = self.state.as_dict()
        body.update(event=event, title=self.heading(), version=self.version,
                    beat=self.ping_interval, night=self.night or None)
        if not self.live:
            body["live"] = False
        body.update(extra)
        return json.dumps(body)

    def full(self) -> bool:
        return len(self.waiters) >= self.max_connections

    def on_change(self, change: Change) -> None:
        """The feed's listener on the change path: every open socket gets the new state."""
        extra = {}
        if change.event == "press":
            extra["source"] = change.source
            if change.note:
                extra["note"] = change.note
        self.send_updates(change.state, change.event, **extra)

    def set_live(self, live: bool) -> None:
        """Say on every page whether the count is being kept current (e.g. the shared store is down)."""
        if live != self.live:
            self.live = live
            self.send_updates(self.state, "state")

    def send_updates(self, state: State, event: str, **extra) -> None:
        """Send a newly committed state to every open socket, without waiting on any of them.

        The WebSocket frame is built once and the same bytes go to every socket;
        there is no backpressure: a socket whose unsent data passes max_buffered is
        dropped rather than allowed to slow the others or to grow memory.
        """
        if state.serial < self.state.serial:
            return  # an older commit whose callback arrived late: the screens have newer
        self.state = state
        frame = text_frame(self.message(event, **extra).encode())
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
            beat=self.feed.ping_interval,
            night=self.feed.night,
        )


class PageHandler(SecurityHeaders, tornado.web.RequestHandler):
    """/admin and /history: a template and its static files; the data comes from the API and the feed."""

    def initialize(self, feed: Feed, template: str) -> None:
        self.feed = feed
        self.template = template

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Frame-Options", "DENY")  # no other site frames the admin page
        self.render(self.template, title=self.feed.heading())


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
            raise ApiError(503, f"too many viewers (limit {self.feed.max_connections})",
                           {"Retry-After": "30"})

    def write_error(self, status_code: int, **kwargs) -> None:
        # A refused handshake answers like the API, so a client can read why.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        for name, value in getattr(exc, "headers", {}).items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish({"error": getattr(exc, "message", None) or self._reason})

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
# A ping and the page's heartbeat in one send: {"event": "beat"} has no count, so pages of
# any version ignore it but for resetting their watchdog.
PING_AND_BEAT = PING_FRAME + text_frame(b'{"event":"beat"}')


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
    store,
    feed: Feed,
    token: Optional[str] = None,
    health: Optional[Callable[[], dict]] = None,
    ping_interval: float = 20.0,
    ping_timeout: float = 10.0,
    store_health: Optional[Callable[[], dict]] = None,
    throttle: Optional[Throttle] = None,
    metrics=None,
) -> tornado.web.Application:
    """The Tornado application: the page, its assets, the feed and the JSON API.

    ``store`` is a Repository or a RedisStore (see store.py). Changes reach the feed
    through the change path that main() wires, not through the handlers.
    """
    if health is None:
        health = lambda: {"kind": "none", "ok": True}  # noqa: E731
    if store_health is None:
        store_health = getattr(store, "health", None) or (lambda: {"kind": "sqlite", "ok": True})
    feed.version = page_version()
    # The feed pings its sockets itself with one timer; Tornado's own pinger (a task
    # per socket) stays off.
    feed.ping_interval, feed.ping_timeout = ping_interval, ping_timeout
    api = dict(store=store, feed=feed, token=token, throttle=throttle or Throttle())
    from metrics import Metrics, MetricsHandler  # always on; a registry of this app's own
    metrics = metrics or Metrics(feed, health)
    icons = r"/(favicon\.ico|apple-touch-icon\.png|apple-touch-icon-precomposed\.png)"
    return tornado.web.Application(
        [
            (r"/", MainHandler, dict(feed=feed)),
            (icons, StaticHandler, dict(path=STATIC_DIR)),
            (r"/websocket", FeedSocket, dict(feed=feed)),
            (r"/api/count", CountHandler, api),
            (r"/api/press", PressHandler, api),
            (r"/api/undo", UndoHandler, api),
            (r"/api/auth", AuthHandler, api),
            (r"/healthz", HealthHandler, dict(feed=feed, health=health, store_health=store_health)),
            (r"/metrics", MetricsHandler, dict(metrics=metrics)),
            (r"/api/history", HistoryHandler, dict(store=store)),
            (r"/api/history\.csv", HistoryCsvHandler, dict(store=store)),
            (r"/api/rounds", RoundsHandler, dict(store=store)),
            (r"/admin", PageHandler, dict(feed=feed, template="admin.html")),
            (r"/history", PageHandler, dict(feed=feed, template="history.html")),
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


MAX_PING_INTERVAL = 24.0  # seconds; x 1.25 (the page's patience) is 30 s
NIGHT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
STORE_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")  # also part of the outbox's file name
ROUNDS = ("none", "daily", "weekly", "monthly")


def open_store(goal: int):
    """The store of --store: the SQLite file of --db, or a shared Redis (its client is imported only then)."""
    if not options.store:
        return Repository(options.db, goal=goal)
    if not options.store.startswith(("redis://", "rediss://")):
        raise StartupError(f"--store must be a redis:// URL, not {options.store!r}")
    from redis_store import RedisStore
    outbox = os.path.splitext(options.db)[0] + f".{options.store_key}.outbox.db"
    return RedisStore(options.store, key=options.store_key, goal=goal, outbox_path=outbox)


async def serve(store, button, token: Optional[str]) -> None:
    """Wire the change path, listen, run the button, and return after SIGTERM or SIGINT."""
    loop = IOLoop.current()
    changes = Changes(loop)
    closers: List[Callable[[], object]] = []
    # The one path: every committed change (ours, or another server's through Redis)
    # reaches the IOLoop once, then each listener in turn. The store is heard before its
    # state is read, so that no change falls between the two (the feed skips older ones).
    store.listen(changes.publish)
    feed = Feed(store.state(), title=options.title, max_connections=options.max_connections,
                night=options.night)
    changes.listen(feed.on_change)
    if hasattr(store, "on_live"):
        store.on_live(lambda live: loop.add_callback(feed.set_live, live))
    from metrics import Metrics
    metrics = Metrics(feed, button.health)
    changes.listen(metrics.on_change)
    try:
        if options.webhook:
            from webhooks import Webhooks, parse_urls
            webhooks = Webhooks(parse_urls(options.webhook))
            changes.listen(webhooks.on_change)
            closers.append(webhooks.close)
        if options.mqtt:
            from mqtt_bridge import MqttBridge
            bridge = MqttBridge(options.mqtt, store, topic=options.mqtt_topic, discovery=options.mqtt_discovery,
                                commands=options.mqtt_commands, loop=loop, heading=feed.heading)
            changes.listen(bridge.on_change)
            closers.append(bridge.close)
            bridge.start(feed.state)
    except ValueError as e:  # a bad --webhook or --mqtt URL
        raise StartupError(str(e)) from None
    app = make_app(store, feed, token=token, health=button.health,
                   ping_interval=options.ping_interval, metrics=metrics)
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
    if options.round != "none":
        from rounds import RoundSchedule  # a new round at each local day, week or month
        schedule = RoundSchedule(store, options.round, loop=loop)
        schedule.start()  # also applies a boundary passed while the server was off
        closers.append(schedule.stop)

    def on_press() -> None:
        # Runs in the button thread: the store commits, and its commit hands the change on.
        try:
            store.press(source=button.name)
        except StoreError as e:
            log.error("button press NOT stored: %s", e)

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
        for close in reversed(closers):
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, timeout=2)
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %r failed", close)
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=2)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time")


def _bad_option(argv) -> Optional[str]:
    """The first --name=value in argv whose value does not parse as its option's type, as "--name"."""
    for arg in argv[1:]:
        name, _, value = arg.lstrip("-").partition("=")
        try:
            current = getattr(options, name.replace("-", "_"))
        except AttributeError:
            continue
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            try:
                type(current)(value)
            except ValueError:
                return "--" + name
    return None


def _check_options() -> Optional[str]:
    """What is wrong with the parsed options, in one line, or None."""
    if options.button not in KINDS:
        return f"--button must be one of {', '.join(KINDS)}, not {options.button!r}"
    if options.pull not in PULLS:
        return f"--pull must be one of {', '.join(PULLS)}, not {options.pull!r}"
    if options.max_connections < 1:
        return "--max-connections must be at least 1"
    if not 0 < options.ping_interval <= MAX_PING_INTERVAL:
        # A page gives up after 1.25 heartbeats: past 24 s it would not notice a dead server within 30 s.
        return f"--ping-interval must be more than 0 and at most {MAX_PING_INTERVAL:g} seconds"
    if options.night and not NIGHT_RE.match(options.night):
        return f"--night must look like 19:00-07:00, not {options.night!r}"
    if not STORE_KEY_RE.match(options.store_key):
        return f"--store-key must be 1-100 letters, digits or . _ : -, not {options.store_key!r}"
    if options.round not in ROUNDS:
        return f"--round must be one of {', '.join(ROUNDS)}, not {options.round!r}"
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
    problem = _check_options()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    token = options.admin_token or os.environ.get("BUTTON_ADMIN_TOKEN") or None
    _raise_fd_limit()
    try:
        store = open_store(options.goal)
    except (StoreError, InvalidValue, StartupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        button = make_button(options.button, options.pin, options.pull)
    except ButtonError as e:
        store.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(store, button, token))
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        button.stop()  # GPIO.cleanup() on every way out
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
