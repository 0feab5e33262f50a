"""The live feed: the open sockets, the frames they get, the pings, and every Tornado internal we use.

Used on the IOLoop thread only. ``Feed.on_change`` is the feed's listener on the change
path. A newly committed state is encoded once, framed once, and the same bytes go to
every socket without waiting on any of them (no backpressure: a socket that stops
reading is dropped, see ``FeedSocket.send_frame``).

Tornado's public WebSocket API (``write_message``) builds a frame and a coroutine per
socket; at 10,000 viewers that is several times slower (bench/README.md). So this module,
and no other, reaches past it. Each reach is in one small method with a comment naming
the test in tests/test_feed_internals.py that fails when a Tornado release changes it:

- ``FeedSocket._stream``: ``ws_connection.stream``, the connection's IOStream, with its
  ``max_write_buffer_size``, ``writing()`` and ``socket``
  (test_feed_internals.test_the_stream_is_an_iostream);
- ``FeedSocket._closing``: ``ws_connection.is_closing()``
  (test_feed_internals.test_a_closing_socket_leaves_the_feed);
- ``FeedSocket._forget_http``: the handshake's HTTP connection objects, let go of
  (test_feed_internals.test_a_socket_works_without_its_http_connection).

A request that is not a WebSocket handshake is refused in ``FeedSocket.prepare`` with the
one error shape (thebutton/web.py), before Tornado's own checks could answer in plain text.
"""
from __future__ import annotations

import json
import logging
import struct
from typing import Any, Dict, Optional, Set

import tornado.web
import tornado.websocket
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from thebutton.hosts import HostRule, client_key
from thebutton.screens import Screens, parse_hello
from thebutton.store import Change, State
from thebutton.web import ApiError, ErrorShape

log = logging.getLogger("button.feed")

MAX_CLIENT_MESSAGE = 1024  # bytes; the feed is read-only, a bigger frame closes that socket
MAX_BUFFERED = 64 * 1024  # bytes a reader may leave unread (beyond the kernel's) before it is dropped
PING_SLOTS = 20  # a ping interval is this many ticks, each pinging one slot of the sockets
HELLOS_PER_SECOND = 4  # hellos of one socket taken in per second; the rest are dropped unread


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


PING_FRAME = b"\x89\x00"  # an unmasked ping with no payload (RFC 6455 5.5.2)
# A ping and the page's heartbeat in one send: {"event": "beat"} has no count, so pages of
# any version ignore it but for resetting their watchdog.
PING_AND_BEAT = PING_FRAME + text_frame(b'{"event":"beat"}')


class Feed:
    """The open sockets and the latest committed state.

    ``ping_interval`` seconds (0 = none) between pings to each socket; a socket silent for
    longer than ``ping_timeout`` after a ping is dropped. ``version`` is the page's
    version (pages reload when it changes).
    """

    def __init__(self, state: State, title: Optional[str] = None, max_connections: int = 1000,
                 max_buffered: int = MAX_BUFFERED, night: str = "", version: str = "",
                 ping_interval: float = 0.0, ping_timeout: float = 10.0, per_address: int = 0,
                 leaderboard: bool = True, screens: Optional[Screens] = None) -> None:
        self.screens = screens if screens is not None else Screens()  # who said hello (thebutton/screens.py)
        self.hellos_dropped = 0  # hellos past a socket's HELLOS_PER_SECOND
        self.messages_ignored = 0  # other messages, and hellos that were not valid
        self.leaderboard = leaderboard  # the round's top 3 go with every message (--leaderboard=off: never)
        self.recap: Optional[Dict[str, Any]] = None  # the round's recap while the goal stands (thebutton/recap.py)
        self.waiters: Set[FeedSocket] = set()
        self.per_address = per_address  # most sockets of one client (client_key); 0 = no limit
        self.of_address: Dict[str, int] = {}  # open sockets per client, only with a limit
        self._said_full: Dict[str, float] = {}  # when the log last named a client that hit the limit
        self.state = state
        self.title = title
        self.max_connections = max_connections
        self.max_buffered = max_buffered
        self.night = night  # "HH:MM-HH:MM" when pages dim, or ""
        self.live = True  # False while the store cannot keep the count current
        self.version = version
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._pinger: Optional[PeriodicCallback] = None
        self._tick = 0  # the slot the next ping_tick pings
        self._next_slot = 0  # the slot the next viewer joins

    def add(self, waiter: FeedSocket) -> None:
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

    def message(self, event: str, **extra: Any) -> str:
        """The state as the JSON text every socket gets; event is state, press, undo, set or round."""
        body = self.state.as_dict()
        body.update(event=event, title=self.heading(), version=self.version,
                    beat=self.ping_interval, night=self.night or None)
        if self.leaderboard:
            body["leaders"] = [{"by": by, "presses": n} for by, n in self.state.leaders]
        if self.recap is not None and self.state.count == 0:
            body["recap"] = self.recap
        if not self.live:
            body["live"] = False
        body.update(extra)
        return json.dumps(body)

    def hold(self, waiter: FeedSocket) -> None:
        """Count a socket against its client from its accepted handshake on, before it opens.

        Tornado awaits between prepare and open: a burst of handshakes from one address
        would all pass a check of the open sockets alone.
        """
        if self.per_address and not waiter.held:
            waiter.held = True
            self.of_address[waiter.client] = self.of_address.get(waiter.client, 0) + 1

    def remove(self, waiter: FeedSocket) -> None:
        """The one way a viewer leaves the feed (closed, dropped, gone, or its handshake refused); twice is fine."""
        self.waiters.discard(waiter)
        if waiter.screen:
            self.screens.gone(waiter.screen, socket=id(waiter))
            waiter.screen = ""
        if waiter.held:
            waiter.held = False
            left = self.of_address.get(waiter.client, 1) - 1
            if left > 0:
                self.of_address[waiter.client] = left
            else:
                self.of_address.pop(waiter.client, None)

    def heard(self, waiter: FeedSocket, message: Any) -> None:
        """A message from a page: a hello goes to the registry; anything else is ignored.

        A socket's hellos past HELLOS_PER_SECOND in one second are not read, so that a flood
        costs a comparison each; the latest of them is kept and read when the second is over,
        since a page says hello only when something changed and its last word is the true one
        (five clicks on Mute in a second must end muted).
        """
        loop = IOLoop.current()
        now = loop.time()
        if now - waiter.hello_window >= 1.0:
            waiter.hello_window = now
            waiter.hellos = 0
        waiter.hellos += 1
        if waiter.hellos > HELLOS_PER_SECOND:
            self.hellos_dropped += 1
            if waiter.hello_later is None:
                loop.call_at(waiter.hello_window + 1.0, self._hello_later, waiter)
            waiter.hello_later = message
            return
        if waiter not in self.waiters:
            return  # dropped already: its last words do not count
        hello = parse_hello(message)
        if hello is None:
            self.messages_ignored += 1
            if not waiter.said_bad:
                waiter.said_bad = True  # once a socket; never what it sent
                log.info("ignored a message that is not a valid hello (%s)", waiter.request.remote_ip)
            return
        before = waiter.screen or None
        if self.screens.hello(hello, waiter.request.remote_ip or "?", before, socket=id(waiter)):
            waiter.screen = hello.screen
        elif before is not None:
            waiter.screen = ""  # not listed: it no longer counts as the screen it was

    def _hello_later(self, waiter: FeedSocket) -> None:
        """The latest hello a socket sent past its limit, read now that its second is over."""
        message, waiter.hello_later = waiter.hello_later, None
        waiter.hello_window = -2.0  # a new second begins with this one
        if message is not None and waiter in self.waiters:
            self.heard(waiter, message)

    def command(self, screen: str, command: str) -> int:
        """Send {"command": ...} to the sockets of ``screen`` ("*": of every screen); how many screens got it.

        identify carries the screen's name, which each page shows big.
        """
        names = set()
        for waiter in list(self.waiters):
            name = waiter.screen
            if name and (screen == "*" or name == screen):
                body: Dict[str, Any] = {"command": command}
                if command == "identify":
                    body["screen"] = name
                waiter.send_frame(text_frame(json.dumps(body).encode()))
                names.add(name)
        return len(names)

    def set_recap(self, recap: Optional[Dict[str, Any]]) -> None:
        """The round's recap (None: none); a new one goes to every page at once."""
        changed = recap != self.recap
        self.recap = recap
        if changed and recap is not None:
            frame = text_frame(self.message("recap").encode())
            for waiter in list(self.waiters):
                waiter.send_frame(frame)

    def full(self) -> bool:
        return len(self.waiters) >= self.max_connections

    def full_for(self, client: str) -> bool:
        """Whether this client (client_key) holds --viewers-per-address sockets already."""
        return bool(self.per_address) and self.of_address.get(client, 0) >= self.per_address

    def say_full_for(self, client: str, now: float) -> bool:
        """Whether to log that this client hit the limit: once a minute per client, not once per socket of a flood."""
        if now - self._said_full.get(client, -120.0) < 60.0:
            return False
        if len(self._said_full) > 1000:
            self._said_full.clear()
        self._said_full[client] = now
        return True

    def on_change(self, change: Change) -> None:
        """The feed's listener on the change path: every open socket gets the new state."""
        if change.event == "live":
            if change.live != self.live:
                self.live = change.live
                self.send_updates(self.state, "state")  # the pages say whether the count is live
            return
        extra: Dict[str, Any] = {}
        if change.event == "press":
            extra["source"] = change.source
            if change.note:
                extra["note"] = change.note
            if change.by:
                extra["by"] = change.by
            if change.device:
                extra["device"] = change.device
        self.send_updates(change.state, change.event, **extra)

    def send_updates(self, state: State, event: str, **extra: Any) -> None:
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


def handshake_refusal(request: HTTPServerRequest) -> Optional[ApiError]:
    """Why ``request`` cannot open the feed (None: it is a WebSocket handshake Tornado accepts).

    The checks of Tornado's WebSocketHandler.get and WebSocketProtocol13, made first so that
    a refusal is JSON like every other error. A plain GET and a HEAD get the same answer.
    """
    headers = request.headers
    if headers.get("Upgrade", "").lower() != "websocket":
        return ApiError(400, "this is the live feed: open it as a WebSocket (Upgrade: websocket)")
    if request.method != "GET":
        return ApiError(400, "a WebSocket handshake is a GET")
    if "upgrade" not in [part.strip().lower() for part in headers.get("Connection", "").split(",")]:
        return ApiError(400, 'a WebSocket handshake has "Connection: Upgrade"')
    if headers.get("Sec-WebSocket-Version") != "13":
        return ApiError(426, "WebSocket version 13 only", {"Sec-WebSocket-Version": "13"})
    if not headers.get("Sec-WebSocket-Key") or not headers.get("Host"):
        return ApiError(400, "a WebSocket handshake has Host and Sec-WebSocket-Key headers")
    if headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers:
        return ApiError(400, "a WebSocket handshake has no body")
    return None


@tornado.web.stream_request_body  # prepare answers before any body is read: no bare 400 past Tornado's limit
class FeedSocket(ErrorShape, tornado.websocket.WebSocketHandler):
    """One viewer of the live feed. Read-only: what a client sends is ignored, but a page's hello.

    ErrorShape's write_error answers a refused handshake like the API, so a client can read why.
    """

    pong_due = 0.0  # when the oldest unanswered ping went out (Feed.ping_tick); 0 = none
    ping_slot = 0  # which of PING_SLOTS ticks pings this socket
    stream: Optional[IOStream] = None  # the connection's IOStream, once open

    client = ""  # whose socket it is (thebutton.hosts.client_key of the address)
    held = False  # counted in feed.of_address (Feed.hold) until Feed.remove
    screen = ""  # the name its last hello gave, while it counts as that screen (Feed.heard)
    hello_window = -2.0  # when the current second of hellos began (IOLoop time)
    hellos = 0  # messages in that second
    hello_later: Optional[str] = None  # the latest hello past the limit, read when the second is over
    said_bad = False  # whether the log said it sent something that is not a hello

    def initialize(self, feed: Feed, hosts: Optional[HostRule] = None) -> None:
        self.feed = feed
        self.hosts = hosts

    def prepare(self) -> None:
        method = self.request.method
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"{method} is not allowed here", {"Allow": "GET, HEAD"})
        refused = handshake_refusal(self.request)
        if refused is not None:
            raise refused
        origin = self.request.headers.get("Origin")
        if origin is not None and self.hosts is not None and not self.hosts.allows_origin(origin):
            # A page of another site (in an employee's browser) may not watch the feed.
            raise ApiError(403, "this feed is for pages of this server; a page elsewhere may not open it "
                                "(add its host with --hosts if it is yours)")
        if self.feed.full():
            log.warning("refused a viewer: %d connections is the limit", self.feed.max_connections)
            raise ApiError(503, f"too many viewers (limit {self.feed.max_connections})",
                           {"Retry-After": "30"})
        self.client = client_key(self.request.remote_ip or "?")
        if self.feed.full_for(self.client):
            if self.feed.say_full_for(self.client, IOLoop.current().time()):
                log.warning("refused viewers from %s: it holds %d sockets, the most one address may "
                            "(--viewers-per-address; 0 = no limit, for a reverse proxy)", self.client,
                            self.feed.per_address)
            raise ApiError(503, f"too many viewers from {self.client} (at most {self.feed.per_address} "
                                "an address: --viewers-per-address)", {"Retry-After": "30"})
        self.feed.hold(self)  # last: a refusal above has nothing to give back

    def data_received(self, chunk: bytes) -> None:
        pass  # a body was refused in prepare; what still arrives of it is dropped

    def get_compression_options(self) -> None:
        # Off: send_frame writes ready-made uncompressed frames shared by every socket.
        return None

    def check_origin(self, origin: str) -> bool:
        # Checked in prepare, against the host rule, so that a refusal is JSON like every other.
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        self.stream = self._stream()
        self._forget_http()
        self.feed.add(self)
        self.send_frame(text_frame(self.feed.message("state").encode()))

    def _stream(self) -> IOStream:
        # Tornado internal: WebSocketProtocol13.stream is the connection's IOStream (typed
        # Optional in Tornado 6.6; set once the handshake is answered). Its
        # max_write_buffer_size makes IOStream refuse writes past it (StreamBufferFullError):
        # the stuck-reader limit. Guarded by test_feed_internals.test_the_stream_is_an_iostream
        # and test_faults.StuckReaderTest.
        connection = self.ws_connection
        stream = getattr(connection, "stream", None)
        if not isinstance(stream, IOStream):
            raise RuntimeError(f"Tornado's WebSocket connection has no IOStream: {stream!r}")
        stream.max_write_buffer_size = self.feed.max_buffered
        return stream

    def _forget_http(self) -> None:
        # Tornado internal: once the handshake is over Tornado never uses the HTTP connection
        # objects again; letting go of them saves about 2 KB a viewer (bench/README.md).
        # Guarded by test_feed_internals.test_a_socket_works_without_its_http_connection.
        self.request.connection = self.request.server_connection = None

    def _closing(self) -> bool:
        # Tornado internal: WebSocketProtocol.is_closing() is true once the close handshake
        # began or the stream closed. Guarded by
        # test_feed_internals.test_a_closing_socket_leaves_the_feed.
        connection = self.ws_connection
        return connection is None or connection.is_closing()

    def send_frame(self, frame: bytes) -> None:
        """Queue a ready-made frame; drop this socket if it is closed or has stopped reading."""
        stream = self.stream
        if stream is None or self._closing():
            self.feed.remove(self)
            return
        try:
            if not stream.writing():
                # Fast path: nothing queued, so hand the frame straight to the kernel; only
                # a part the socket cannot take now goes through IOStream's buffer.
                # Guarded by test_feed_internals.test_the_stream_is_an_iostream.
                try:
                    sent = stream.socket.send(frame)
                except BlockingIOError:
                    sent = 0
                if sent == len(frame):
                    return
                frame = frame[sent:]
            stream.write(frame)
        except (StreamClosedError, OSError):
            self.feed.remove(self)
        except StreamBufferFullError:
            log.warning("dropped a viewer that stopped reading (%s)", self.request.remote_ip)
            self.drop()

    def drop(self) -> None:
        """Close the connection at once: a close frame would only queue behind unread data."""
        self.feed.remove(self)
        if self.stream is not None:
            self.stream.close()

    def on_pong(self, data: bytes) -> None:
        self.pong_due = 0.0

    def on_message(self, message: Any) -> None:
        # Tornado closes a socket whose message passes websocket_max_message_size (1009)
        # before this is called: only a small message gets here.
        self.feed.heard(self, message)

    def on_finish(self) -> None:
        # The handshake's answer is out: one refused after hold (by Tornado's own checks)
        # gives its slot back; a 101 keeps it until the socket closes.
        if self.get_status() != 101:
            self.feed.remove(self)

    def on_close(self) -> None:
        self.feed.remove(self)
