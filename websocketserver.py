"""The Button's server: the options, main(), and the wiring of the parts in thebutton/.

Threads: the IOLoop thread runs every handler and every write to a socket. The button
thread (Button.py) stores a press through the store and the store's commit hands the
change to the IOLoop (``Changes.publish``, ``IOLoop.add_callback``); that is its only
contact with Tornado. HTTP writes run the store's work in an executor thread.

``wire`` decides from the options which parts there are and joins them on the change
path; ``run`` is the lifecycle: listen, start the button, wait for SIGTERM or SIGINT,
stop in order.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Awaitable, Callable, List, Optional, Union

import tornado.options
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets
from tornado.options import define, options

from Button import BUTTON_CHOICES, PULLS, ButtonError, ButtonSpec, check_board_pin, import_gpio, make_button, parse_buttons
from Repository import Repository, default_path
from thebutton.app import make_app
from thebutton.changes import Changes, PressSource
from thebutton.feed import Feed
from thebutton.hosts import HostRule, parse_hosts
from thebutton.languages import check as check_lang
from thebutton.languages import webhook_words
from thebutton.led import Led
from thebutton.metrics import Metrics
from thebutton.pages import page_version
from thebutton.recap import Recaps
from thebutton.rounds import PERIODS
from thebutton.screens import Screens
from thebutton.store import InvalidValue, NothingToUndo, Store, StoreError
from thebutton.validation import NIGHT_RE, STORE_KEY_RE, check_token
from thebutton.web import Application, server_options

log = logging.getLogger("button.server")

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_PING_INTERVAL = 24.0  # seconds; x 1.25 (the page's patience) is 30 s
HOLDS = ("none", "undo")  # --hold
HOLD_SECONDS = 2.0  # --hold=undo: held this long, a press undoes instead

define("port", default=8888, type=int, help="HTTP and WebSocket port (below 1024 needs root or CAP_NET_BIND_SERVICE)")
define("address", default="", help='bind address; "" listens on every interface, so anyone on the LAN can open the page; '
       "127.0.0.1 keeps it to this machine")
define("db", default=default_path(), help="SQLite file that keeps the count; created on first run")
define("goal", default=20, type=int, help="the goal a fresh database starts at (an existing database keeps its own)")
define("button", default="auto", help="press source: auto (GPIO, else keyboard on a terminal, else none), gpio, keyboard, none")
define("pin", default=11, type=int, help="physical (BOARD) pin number of the button; 11 is GPIO17")
define("pull", default="up", help="up: button wired to ground, pressed = LOW; down: button wired to 3.3 V, pressed = HIGH")
define("buttons", default="", help='more push buttons, comma-separated BOARD PIN:ACTION: "13:undo" undoes the latest press, '
       '"15:Ana" presses with by = Ana (one button per person or team); wired like the main one (--pull)')
define("hold", default="none", help="none: a press counts as the button goes down; undo: it counts when let go within "
       "2 s, and holding a button 2 s undoes the latest press instead")
define("led", default="", help='BOARD pin of an LED (active high, with a resistor to ground) that flashes when a press '
       'is stored, twice for an undo, blinks while presses wait for the shared store, fast when one failed; "" = none')
define("admin_token", default=None, help="bearer token for the write API (default: env BUTTON_ADMIN_TOKEN); unset = write API disabled")
define("leaderboard", default="on", help="on: the countdown page shows the round's top 3 once a press has a name "
       '("by"); off: it never does')
define("title", default=None, help='page heading when none was set through the API or /admin (default: "Countdown to <goal>")')
define("max_connections", default=1000, type=int, help="most WebSocket viewers at once; more are refused with 503")
define("viewers_per_address", default=100, type=int, help="most WebSocket viewers from one address (an IPv6 /64); "
       "0 = no limit, behind a reverse proxy through which every TV comes from one address")
define("hosts", default="", help="more host names to answer to, comma-separated (.example.com: it and every name "
       "under it; * = any, behind a proxy that checks names). IP addresses, localhost, names without a dot, "
       ".local, .lan, .home, .home.arpa, .internal, .localdomain and this machine's names always work")
define("ping_interval", default=20.0, type=float, help="seconds (more than 0, at most 24) between heartbeats to each page "
       "(and pings); a page that hears nothing for 1.25x this reconnects, so within 30 s")
define("night", default="", help='local hours when pages dim, e.g. "19:00-07:00"; "" = never (the count always stays visible)')
define("round", default="none", help="none, daily, weekly (from Monday) or monthly: a new round (count = goal) starts at each period, local time")
define("webhook", default="", help="URL(s), comma-separated, that get a JSON POST after each change (Slack/Teams incoming webhooks); \"\" = off")
define("mqtt", default="", help="mqtt://[user[:password]@]host[:port] of an MQTT broker to publish the state to; \"\" = off")
define("mqtt_topic", default="the-button", help="MQTT base topic: <topic>/state, <topic>/availability, <topic>/press, <topic>/undo")
define("mqtt_discovery", default="homeassistant", help='Home Assistant discovery prefix; "" = no discovery configs')
define("mqtt_commands", default=False, type=bool, help="obey <topic>/press and <topic>/undo: then anyone who may publish to the broker can press")
define("store", default="", help="redis://[:password@]host[:port][/db] to share one count among several servers; \"\" = the SQLite file of --db")
define("lang", default="auto", help="the pages' language: auto (each browser's preferred one when we have it, else English), "
       "en, de, fr, es, nl or zh; webhook sentences follow it (auto: English)")
define("store_key", default="the-button", help="key prefix in Redis; servers with the same Redis and key share one count")


class StartupError(Exception):
    """A reason not to start, said in one line."""


Closer = Callable[[], Union[None, Awaitable[None]]]


@dataclass
class Server:
    """The parts of one running server, as wire() joined them."""

    store: Store
    button: PressSource
    feed: Feed
    app: Application
    token: Optional[str]
    starters: List[Callable[[], None]] = field(default_factory=list)  # after listening, in order
    closers: List[Closer] = field(default_factory=list)  # at the stop, in reverse order
    press_failed: List[Callable[[], None]] = field(default_factory=list)  # a button press the store refused


def open_store(goal: int) -> Store:
    """The store of --store: the SQLite file of --db, or a shared Redis (its client is imported only then)."""
    if not options.store:
        return Repository(options.db, goal=goal)
    if not options.store.startswith(("redis://", "rediss://")):
        raise StartupError(f"--store must be a redis:// URL, not {options.store!r}")
    from thebutton.redis_store import RedisStore

    outbox = os.path.splitext(options.db)[0] + f".{options.store_key}.outbox.db"
    return RedisStore(options.store, key=options.store_key, goal=goal, outbox_path=outbox)


def screens_path() -> str:
    """The screens' file (thebutton/screens.py): beside the SQLite file, or beside the Redis store's outbox."""
    base = os.path.splitext(options.db)[0]
    return base + (f".{options.store_key}.screens.json" if options.store else ".screens.json")


def wire(store: Store, button: PressSource, token: Optional[str], loop: IOLoop, led: Optional[Led] = None) -> Server:
    """Which parts, from the options, and the change path between them.

    Every committed change (ours, or another server's through Redis) reaches the IOLoop
    once, then each listener in turn. The store is heard before its state is read, so
    that no change falls between the two (the feed skips older ones). The LED (``--led``,
    made by main() from the GPIO module) is one more listener.
    """
    changes = Changes(loop)
    store.listen(changes.publish)
    feed = Feed(store.state(), title=options.title, max_connections=options.max_connections,
                night=options.night, version=page_version(HERE, os.path.join(HERE, "static")),
                ping_interval=options.ping_interval, ping_timeout=10.0, per_address=options.viewers_per_address,
                leaderboard=options.leaderboard == "on", screens=Screens(screens_path()))
    changes.listen(feed.on_change)
    recaps = Recaps(store, feed, loop=loop)
    changes.listen(recaps.on_change)
    health = button.health
    if led is not None:
        changes.listen(led.on_change)
        health = with_led(button.health, led)
    metrics = Metrics(feed, health)
    changes.listen(metrics.on_change)
    app = make_app(store, feed, metrics, HERE, token=token, health=health,
                   hosts=HostRule(parse_hosts(options.hosts)), lang=options.lang)
    server = Server(store, button, feed, app, token)
    server.starters.append(recaps.start)
    server.starters.append(feed.screens.start)
    server.closers.append(feed.screens.close)  # after the feed closed its sockets: all are gone now
    if led is not None:
        server.starters.append(led.start)
        server.closers.append(led.stop)  # runs before main()'s button.stop(): LED off, then GPIO.cleanup()
        server.press_failed.append(led.failed)
    try:
        if options.webhook:
            from thebutton.webhooks import Webhooks, parse_urls

            webhooks = Webhooks(parse_urls(options.webhook), words=webhook_words(options.lang))
            changes.listen(webhooks.on_change)
            server.closers.append(webhooks.close)
        if options.mqtt:
            from thebutton.mqtt import MqttBridge

            bridge = MqttBridge(options.mqtt, store, topic=options.mqtt_topic, discovery=options.mqtt_discovery,
                                commands=options.mqtt_commands, loop=loop, heading=feed.heading)
            changes.listen(bridge.on_change)
            server.starters.append(lambda: bridge.start(feed.state))
            server.closers.append(bridge.close)
    except ValueError as e:  # a bad --webhook or --mqtt URL
        raise StartupError(str(e)) from None
    if options.round != "none":
        from thebutton.rounds import RoundSchedule  # a new round at each local day, week or month

        schedule = RoundSchedule(store, options.round, loop=loop)
        server.starters.append(schedule.start)  # also applies a boundary passed while the server was off
        server.closers.append(schedule.stop)
    return server


# Connections the kernel holds for us before we accept them. Tornado's 128 overflows when a
# thousand pages reconnect at once while the server reads hellos: the kernel then drops their
# SYNs and each waits a second to try again. The kernel caps it at net.core.somaxconn.
BACKLOG = 4096


def listen(server: Server) -> HTTPServer:
    try:
        sockets = bind_sockets(options.port, options.address or None, backlog=BACKLOG)
        http = HTTPServer(server.app, **server_options())
        http.add_sockets(sockets)
        return http
    except OSError as e:
        where = f"{options.address or '*'}:{options.port}"
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = " (another program, or another copy of The Button, uses that port; pick one with --port)"
        elif e.errno == errno.EACCES:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE; see deploy/)"
        raise StartupError(f"cannot listen on {where}: {e.strerror}{hint}") from e


async def run(server: Server) -> None:
    """Listen, start the optional parts and the button, and return after SIGTERM or SIGINT, stopped in order."""
    http = listen(server)
    for start in server.starters:
        start()
    store, button = server.store, server.button

    def on_press(undo: bool = False, by: Optional[str] = None) -> None:
        # Runs in the button thread: the store commits, and its commit hands the change on.
        try:
            if undo:
                store.undo()
            else:
                store.press(source=button.name, by=by)
        except NothingToUndo:
            log.info("undo from a button: there is no press to undo")
        except StoreError as e:
            log.error("button %s NOT stored: %s", "undo" if undo else "press", e)
            for hook in server.press_failed:
                hook()

    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(sig, stop.set)
    button.start(on_press)
    state = server.feed.state
    log.info("The Button: count %d of %d, page at http://%s:%d/ (write API %s)", state.count, state.goal,
             options.address or "localhost", options.port, "on" if server.token else "off")
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        http.stop()
        server.feed.close_all()
        for close in reversed(server.closers):
            try:
                result = close()
                if result is not None:
                    await asyncio.wait_for(result, timeout=2)
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %r failed", close)
        try:
            await asyncio.wait_for(http.close_all_connections(), timeout=2)
        except asyncio.TimeoutError:
            log.warning("some connections did not close in time")


async def serve(store: Store, button: PressSource, token: Optional[str], led: Optional[Led] = None) -> None:
    await run(wire(store, button, token, IOLoop.current(), led))


def with_led(button_health: Callable[[], dict], led: Led) -> Callable[[], dict]:
    """The button's health with the LED's beside it (a dark LED is worth seeing, not an outage)."""
    def health() -> dict:
        return {**button_health(), "led": led.health()}
    return health


def led_pin(text: str) -> Optional[int]:
    """--led as a pin number, or None; ValueError in one line."""
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--led must be a BOARD pin number (e.g. 13) or empty, not {text!r}") from None


def _raise_fd_limit() -> None:
    """Every viewer is a file descriptor: lift the soft limit to the hard one."""
    try:
        import resource
    except ImportError:  # not on every platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
    if options.button not in BUTTON_CHOICES:
        return f"--button must be one of {', '.join(BUTTON_CHOICES)}, not {options.button!r}"
    if options.pull not in PULLS:
        return f"--pull must be one of {', '.join(PULLS)}, not {options.pull!r}"
    if options.max_connections < 1:
        return "--max-connections must be at least 1"
    if options.leaderboard not in ("on", "off"):
        return f"--leaderboard must be on or off, not {options.leaderboard!r}"
    if options.viewers_per_address < 0:
        return "--viewers-per-address must be 0 (no limit) or more"
    try:
        parse_hosts(options.hosts)
    except ValueError as e:
        return str(e)
    if not 0 < options.ping_interval <= MAX_PING_INTERVAL:
        # A page gives up after 1.25 heartbeats: past 24 s it would not notice a dead server within 30 s.
        return f"--ping-interval must be more than 0 and at most {MAX_PING_INTERVAL:g} seconds"
    if options.night and not NIGHT_RE.match(options.night):
        return f"--night must look like 19:00-07:00, not {options.night!r}"
    if not STORE_KEY_RE.match(options.store_key):
        return f"--store-key must be 1-100 letters, digits or . _ : -, not {options.store_key!r}"
    lang_problem = check_lang(options.lang)
    if lang_problem:
        return lang_problem
    if options.round not in ("none",) + PERIODS:
        return f"--round must be one of none, {', '.join(PERIODS)}, not {options.round!r}"
    if options.hold not in HOLDS:
        return f"--hold must be one of {', '.join(HOLDS)}, not {options.hold!r}"
    try:
        pin = led_pin(options.led)
        if options.button in ("gpio", "auto"):  # the keyboard and none use no pin
            check_board_pin(options.pin, "--pin")
        if pin is not None:
            check_board_pin(pin, "--led")
        parse_buttons(options.buttons, options.pin, pin)
    except (ValueError, ButtonError) as e:
        return str(e)
    if pin is not None and pin == options.pin:
        return f"--led: pin {pin} is the main button's (--pin)"
    if (options.buttons or options.hold != "none") and options.button in ("keyboard", "none"):
        return f"--buttons and --hold need GPIO buttons (--button=gpio or auto), not --button={options.button}"
    return None


def main(argv: Optional[List[str]] = None) -> int:
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
    if token is not None:
        try:
            weak = check_token(token)
        except InvalidValue as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if weak:
            log.warning("%s", weak)
    _raise_fd_limit()
    try:
        store = open_store(options.goal)
    except (StoreError, InvalidValue, StartupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    pin = led_pin(options.led)
    extra: List[ButtonSpec] = parse_buttons(options.buttons, options.pin, pin)
    try:
        gpio = import_gpio() if pin is not None else None  # the LED needs the library whatever --button says
        button = make_button(options.button, options.pin, options.pull, gpio=gpio, buttons=extra,
                             hold=HOLD_SECONDS if options.hold == "undo" else None)
    except ButtonError as e:
        store.close()
        needs = "--led" if pin is not None else "--buttons" if extra else ""
        print(f"error: {needs + ' needs GPIO: ' if needs else ''}{e}", file=sys.stderr)
        return 1
    led = Led(pin, gpio, waiting=lambda: bool(store.health().get("waiting_presses"))) if pin is not None else None
    try:
        asyncio.run(serve(store, button, token, led))
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        button.stop()  # GPIO.cleanup() on every way out
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
