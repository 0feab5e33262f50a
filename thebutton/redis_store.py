"""The Redis store of The Button: one count, goal, title, press log and rounds shared by several servers.

Same interface as ``Repository`` (see store.py). Threads: the store runs its own asyncio
event loop in its own thread ("redis-store"), with redis-py's asyncio client; the public
methods are synchronous and thread-safe (the button thread and Tornado's executor
threads call them and wait on the store's loop), so the IOLoop never waits on Redis.

Every write (a press with its wrap, an undo, a set, a new round) is one Lua script (redis_scripts.py):
read, change, append to the press log, keep the rounds, bump a version and PUBLISH the
change, all in one atomic step. Listeners hear every change, this server's and the
others', from the subscription alone (store.py's one path), in version order; a gap in
versions, another epoch (the key was emptied) or a reconnect makes the store re-read the
state and tell listeners as a "set" change from elsewhere (``local=False``).

Redis can lose the state (a restart without persistence, FLUSHALL, eviction). A fresh key
starts at --goal only for a server that has never seen the state: every script is given the
newest state this server knows (also across its restarts: it is kept beside the outbox) and
puts it back when the key is gone, or when it holds an older state another server put back
(another epoch with a lower version; versions go on through a put-back, so the highest
version is the newest state). The press log cannot be put back: history starts again after
the loss. The server logs an error and /healthz carries a "warning" until it restarts. Each
server also reads the state every CHECK_EVERY seconds, so that a loss is noticed while
nobody presses.

Keys, under the --store-key prefix P: ``P:state`` (a hash: count, goal, presses, title,
version, epoch, the undo floor, the latest press and round ids), ``P:presses`` (a hash
press id -> JSON; ids count up from 1 with no gaps, so history pages by id),
``P:rounds`` (a hash round id -> JSON; undoing a wrap removes the newest one),
``P:applied:<uuid>`` (a press from the outbox already stored), the devices ``P:devices``
(name key -> JSON) and ``P:device_secrets`` (a secret's sha256 -> name key), a device's press
ids ``P:idem:<device uid>:<id>`` (each expires after 24 h), and the channel ``P:changes``.

Physical presses (source "gpio" or "keyboard") are first committed to a local SQLite
outbox (redis_outbox.py), then stored in Redis by their uuid, in order, exactly once (the script skips an
id it has already applied), whenever Redis can be reached: at once, or after an outage,
or after a restart of this server.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import random
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Dict, List, Optional, Set

from thebutton.redis_outbox import Outbox
from thebutton.redis_scripts import (
    LUA_DEVICE_ADD,
    LUA_DEVICE_FIND,
    LUA_DEVICE_REMOVE,
    LUA_HISTORY,
    LUA_LEADERS,
    LUA_PRESS,
    LUA_READ,
    LUA_ROUND,
    LUA_ROUNDS,
    LUA_SET,
    LUA_UNDO,
)
from thebutton.store import (
    DEVICE_RATE,
    DEVICE_WINDOW,
    IDEM_SECONDS,
    Change,
    DeviceExists,
    Duplicate,
    NothingToUndo,
    State,
    StoreError,
    StoreUnavailable,
    TooFast,
    UnknownDevice,
)
from thebutton.validation import (
    MAX_ROUNDS,
    check_by,
    check_count,
    check_device_name,
    check_goal,
    check_idem,
    check_kind,
    check_note,
    check_page,
    check_period,
    check_pressed_at,
    check_title,
    local_month,
    name_key,
    now_iso,
    parse_time,
    utc_ms,
)

log = logging.getLogger("button.redis")

PHYSICAL = ("gpio", "keyboard")  # press sources kept in the outbox while Redis is away
APPLIED_DAYS = 30  # how long Redis remembers the uuid of a press from an outbox
CONNECT_WAIT = 3.0  # seconds the constructor waits for a first connection before going on without
BACKOFF = (0.1, 5.0)  # seconds between reconnect attempts: first, most
CHECK_EVERY = 5.0  # seconds between reads of the state while connected, to notice that Redis lost it

def _change_message(data: str) -> Optional[dict]:
    """A message of the change channel as the scripts publish it, or None for anything else."""
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if not (isinstance(message, dict) and isinstance(message.get("version"), int)
            and isinstance(message.get("state"), dict) and {"epoch", "event", "at"} <= message.keys()):
        return None
    return message


def _redact(url: str) -> str:
    """host:port/db of a redis:// URL, without the password, for logs and /healthz."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class RedisStore:
    """The count in Redis, shared by every server with the same URL and key; see the module docstring.

    When Redis cannot be reached, listeners hear a change with event "live" and ``live``
    False (writes from the API raise StoreUnavailable, button presses wait in the outbox,
    ``state()`` is the last state heard), and another with ``live`` True once it is back.
    """

    def __init__(self, url: str, key: str = "the-button", goal: int = 20, outbox_path: Optional[str] = None,
                 connect_wait: float = CONNECT_WAIT, timeout: float = 5.0) -> None:
        check_goal(goal)
        import redis.asyncio  # only with --store=redis://...

        self.url = url
        self.where = _redact(url)
        self.key = key
        self.goal = goal
        self.timeout = timeout
        self.server_id = uuid.uuid4().hex[:12]
        self.channel = f"{key}:changes"
        self._keys = [f"{key}:state", f"{key}:presses", f"{key}:rounds"]
        self._listeners: List[Callable[[Change], None]] = []
        self._lock = threading.Lock()  # guards the known state and the serial
        self._serial = 0
        self._ops = 0
        self._started: Dict[str, float] = {}  # op id -> when this server sent it, for Change.took
        self._live = False
        self._reason: Optional[str] = "not connected yet"
        self.durable: Optional[bool] = None  # appendonly yes + appendfsync always; None: cannot tell
        self._version: Optional[int] = None  # the latest version told to listeners
        self._epoch: Optional[str] = None
        self.outbox = Outbox(outbox_path) if outbox_path else None
        known = self.outbox.load_known() if self.outbox else None
        self._known = self._state_of(known) if known else State(goal, goal, 0)
        self._known_version = (known or {}).get("version", -1)  # -1: this server has never seen the state
        self._known_epoch: Optional[str] = (known or {}).get("epoch")
        self._lost_epochs: Set[str] = set()  # the epochs a loss was reported for (each once)
        self._saved: Optional[dict] = None  # the known state as last kept beside the outbox
        self._save_error: Optional[str] = None
        self.warning: Optional[str] = None  # set when Redis lost the state; kept until the server restarts
        self.eviction: Optional[str] = None  # Redis's maxmemory-policy, when it may evict keys
        self._closing = False
        self._connected = threading.Event()
        self._ready = threading.Event()  # the store's loop has its lock and its follower
        self._loop = asyncio.new_event_loop()
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_connect_timeout=min(2.0, timeout), socket_timeout=timeout,
            health_check_interval=5, retry=_no_retry(), decode_responses=True)
        self._scripts = {name: self._redis.register_script(lua) for name, lua in (
            ("read", LUA_READ), ("press", LUA_PRESS), ("undo", LUA_UNDO), ("set", LUA_SET),
            ("round", LUA_ROUND), ("history", LUA_HISTORY), ("rounds", LUA_ROUNDS), ("leaders", LUA_LEADERS),
            ("device_add", LUA_DEVICE_ADD), ("device_remove", LUA_DEVICE_REMOVE), ("device_find", LUA_DEVICE_FIND))}
        self._device_keys = [f"{key}:devices", f"{key}:device_secrets"]
        self._thread = threading.Thread(target=self._run_loop, name="redis-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if not self._connected.wait(connect_wait):
            log.warning("Redis at %s is unreachable (%s): starting anyway with the last known count; "
                        "it connects as soon as it can", self.where, self._reason)

    # -- the store's own thread --------------------------------------------------------

    def _run_loop(self) -> None:
        # The "redis-store" thread: runs the subscription and every Redis command.
        asyncio.set_event_loop(self._loop)
        self._drain_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._follower = self._loop.create_task(self._follow_forever())
        self._ready.set()
        self._loop.run_forever()

    async def _follow_forever(self) -> None:
        """Connect, resync, replay the outbox and follow the changes; after any loss, again with backoff."""
        self._delay = BACKOFF[0]
        while not self._closing:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # redis errors, OSError, a broken reply: all mean "reconnect"
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if self._live or self._reason != reason:
                    log.warning("Redis at %s unreachable: %s", self.where, reason)
                self._reason = reason
                self._set_live(False)
            if self._closing:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), self._delay * (0.5 + random.random()))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self._delay = min(self._delay * 2, BACKOFF[1])

    async def _follow(self) -> None:
        # A new PubSub each time: redis-py does not subscribe again by itself after a lost connection.
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            await self._check_durability()
            await self._check_eviction()
            await self._resync()  # after subscribing, so that no change falls between
            await self._drain()
            self._reason = None
            self._delay = BACKOFF[0]
            self._set_live(True)
            self._connected.set()
            await self._drain()  # presses kept between the drain above and going live
            next_check = time.monotonic() + CHECK_EVERY
            while not self._closing:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    heard = _change_message(message["data"])
                    if heard is None:  # not one of ours: trust the state, not it
                        log.warning("a message on %s that is not a change; reading the state again", self.channel)
                        await self._resync()
                    else:
                        await self._heard(heard)
                if self.outbox and self.outbox.pending:
                    await self._drain_again()
                if time.monotonic() >= next_check:  # a FLUSHALL or an eviction publishes nothing
                    await self._resync()
                    next_check = time.monotonic() + CHECK_EVERY
        finally:
            try:
                await (pubsub.aclose() if hasattr(pubsub, "aclose") else pubsub.reset())
            except Exception:  # the connection is already gone; nothing more to release
                pass

    async def _check_durability(self) -> None:
        from redis.exceptions import ResponseError

        try:
            config = await self._redis.config_get("append*")
        except ResponseError as e:
            if self.durable is not False:
                log.warning("cannot tell whether Redis at %s keeps every press through a power cut "
                            "(CONFIG is disabled: %s); it does with appendonly yes and appendfsync always",
                            self.where, e)
            self.durable = None
            return
        durable = config.get("appendonly") == "yes" and config.get("appendfsync") == "always"
        if durable != self.durable:
            if durable:
                log.info("Redis at %s stores every press on disk before answering "
                         "(appendonly yes, appendfsync always)", self.where)
            else:
                log.warning("Redis at %s could lose the last second of presses in a power cut "
                            "(appendonly %s, appendfsync %s): set appendonly yes and appendfsync always "
                            "in redis.conf", self.where, config.get("appendonly"), config.get("appendfsync"))
        self.durable = durable

    async def _check_eviction(self) -> None:
        from redis.exceptions import ResponseError

        try:
            policy = (await self._redis.config_get("maxmemory-policy")).get("maxmemory-policy")
        except ResponseError as e:  # CONFIG renamed or not allowed (managed Redis): nothing to tell
            log.debug("cannot read maxmemory-policy of Redis at %s: %s", self.where, e)
            return
        evicts = policy if policy and policy != "noeviction" else None
        if evicts and evicts != self.eviction:
            log.warning("Redis at %s may evict keys (maxmemory-policy %s) and so lose the count: "
                        "set maxmemory-policy noeviction in redis.conf", self.where, evicts)
        self.eviction = evicts

    async def _resync(self) -> None:
        """Read the state as it is and, if it is not what listeners last heard, tell them."""
        reply = json.loads(await self._call("read"))
        if (reply["epoch"], reply["version"]) != (self._epoch, self._version):
            self._epoch, self._version = reply["epoch"], reply["version"]
            state = self._remember(reply, force=True)
            self._tell(Change("set", state, at=now_iso(), local=False))
        self._save_known()

    async def _heard(self, message: dict) -> None:
        """One change from the subscription: tell it in order, or resync after a gap."""
        version = message["version"]
        if message["epoch"] == self._epoch and version <= self._version:
            return  # already in the state read at (re)subscription
        if message["epoch"] != self._epoch or self._version is None or version != self._version + 1:
            log.info("missed changes (version %s after %s): reading the state again", version, self._version)
            await self._resync()
            return
        self._version = version
        state = self._remember(message)
        op = message.get("op", "")
        started = self._started.pop(op, None)
        self._tell(Change(message["event"], state, note=message.get("note"), by=message.get("by"),
                          source=message.get("source"), device=message.get("device"),
                          at=message["at"], local=op.startswith(self.server_id + ":"),
                          took=None if started is None else time.perf_counter() - started))

    def _tell(self, change: Change) -> None:
        for callback in self._listeners:
            try:
                callback(change)
            except Exception:  # one listener's fault must not stop the subscription
                log.exception("a listener failed on a %s change", change.event)

    def _set_live(self, live: bool) -> None:
        if live == self._live:
            return
        self._live = live
        if live:
            log.info("Redis at %s connected: the count is live (key %r)", self.where, self.key)
        else:
            self._save_known()
        with self._lock:
            known = self._known
        self._tell(Change("live", known, at=now_iso(), live=live))

    async def _call(self, name: str, extra: tuple = (), applied: str = "-") -> Any:
        """Run one of the scripts; returns its reply (EVALSHA, loading the script after a Redis restart)."""
        with self._lock:
            self._ops += 1
            op = f"{self.server_id}:{self._ops}"
        if name not in ("read", "history", "rounds", "leaders"):
            self._started[op] = time.perf_counter()
            if len(self._started) > 10_000:  # replies whose change never came back: forget the oldest
                self._started.pop(next(iter(self._started)))
        args = [self._seed(), now_iso(), uuid.uuid4().hex, self.channel, op, *extra]
        return await self._scripts[name](keys=[*self._keys, f"{self.key}:applied:{applied}"], args=args)

    async def _drain(self) -> Dict[str, State]:
        """Store the outbox's presses in Redis, oldest first, each once; returns their states by uuid."""
        stored: Dict[str, State] = {}
        if not self.outbox:
            return stored
        async with self._drain_lock:
            # The presses waiting now; one kept meanwhile is stored by the next drain (the
            # follow loop drains again while any wait).
            for uid, at, source, note, by in self.outbox.waiting():
                reply = json.loads(await self._call(
                    "press", (source, note or "", uid, APPLIED_DAYS * 86400, at, by or "", name_key(by) or "",
                              local_month(at)), applied=uid))
                self.outbox.done(uid)
                if reply.get("duplicate"):
                    log.info("a kept button press (%s) was already stored", uid)
                stored[uid] = self._remember(reply)
        return stored

    async def _drain_again(self) -> None:
        """Retry presses still kept while connected (Redis refused them, e.g. out of memory); a lost
        connection raises, as in the follow loop."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            await self._drain()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise
        except RedisError as e:
            if self._delay == BACKOFF[0]:  # once per refusal, not at every retry
                log.warning("%d button press(es) kept on disk: Redis at %s refused them (%s); retrying",
                            self.outbox.pending if self.outbox else 0, self.where, e)
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, BACKOFF[1])
        else:
            self._delay = BACKOFF[0]

    # -- any thread ---------------------------------------------------------------------

    def _state_of(self, state: dict) -> State:
        with self._lock:
            self._serial += 1
            leaders = tuple((str(by), int(n)) for by, n in state.get("leaders") or ())
            return State(count=state["count"], goal=state["goal"], presses=state["presses"],
                         title=state.get("title"), leaders=leaders, serial=self._serial)

    def _remember(self, reply: dict, force: bool = False) -> State:
        """The State of a script's reply, kept as the latest known when it is newer."""
        state = self._state_of(reply["state"])
        lost = False
        with self._lock:
            if force or reply["version"] > self._known_version:
                epoch, before = reply["epoch"], self._known_epoch
                self._known, self._known_version, self._known_epoch = state, reply["version"], epoch
                # Epochs change only when the key is made again, so a new one means Redis lost it.
                lost = (reply.get("restored") or (before is not None and epoch != before)) \
                    and epoch not in self._lost_epochs
                if lost:
                    self._lost_epochs.add(epoch)
        if lost:
            self._report_loss(state)
        return state

    def _report_loss(self, state: State) -> None:
        log.error("Redis at %s lost its data (key %r: a restart without persistence, FLUSHALL or eviction): "
                  "the count goes on from the newest state known, now %d of %d, with its title; the presses "
                  "before are gone from the history; keep Redis on disk (appendonly yes) with "
                  "maxmemory-policy noeviction", self.where, self.key, state.count, state.goal)
        self.warning = (f"Redis lost its data at {now_iso()}: the count, goal and title were put back as last "
                        "known; presses before then are gone from the history")

    def _known_record(self) -> dict:
        """The newest state known, with its version and epoch, as the scripts and the outbox keep it."""
        with self._lock:
            known, version, epoch = self._known, self._known_version, self._known_epoch
        record: Dict[str, Any] = {"count": known.count, "goal": known.goal, "presses": known.presses,
                                  "version": version}
        if known.title is not None:
            record["title"] = known.title
        if epoch is not None:
            record["epoch"] = epoch
        return record

    def _seed(self) -> str:
        """The scripts' ARGV[1]: the goal of a fresh key and, once this server has seen the state, that state."""
        seed: Dict[str, Any] = {"goal": self.goal}
        known = self._known_record()
        if known["version"] >= 0:
            seed["known"] = known
        return json.dumps(seed)

    def _save_known(self) -> None:
        """Keep the newest state known beside the outbox (when it changed), for a restart of this server."""
        record = self._known_record()
        if self.outbox and record != self._saved:
            try:
                self.outbox.save_known(record)
            except StoreError as e:  # a full disk must not look like a lost Redis; said once per reason
                if str(e) != self._save_error:
                    log.warning("%s: after a restart this server knows only an older count", e)
                self._save_error = str(e)
                return
            self._saved, self._save_error = record, None

    def _run(self, coroutine, what: str) -> Any:
        """Run a coroutine on the store's loop and wait for it; Redis errors become StoreUnavailable."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if self._closing:
            coroutine.close()
            raise StoreUnavailable("the store is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout + 2)
        except concurrent.futures.TimeoutError as e:  # before OSError: on 3.11 it is the builtin one
            future.cancel()
            raise StoreUnavailable(f"Redis at {self.where} did not answer in time") from e
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {e}") from e
        except RedisError as e:
            raise StoreError(f"Redis at {self.where} could not {what}: {e}") from e

    def _write(self, name: str, what: str, extra: tuple = ()) -> dict:
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        return json.loads(self._run(self._call(name, extra), what))

    def listen(self, callback: Callable[[Change], None]) -> None:
        """Call ``callback(change)`` for every change, ours and other servers', in order (store thread).

        Going out of reach and coming back are changes too (event "live"); a callback given
        while Redis is out of reach hears that at once.
        """
        self._listeners.append(callback)
        if not self._live:
            with self._lock:
                known = self._known
            callback(Change("live", known, at=now_iso(), live=False))

    def state(self) -> State:
        """The latest state known: committed in Redis, or the last heard while it is unreachable."""
        with self._lock:
            return self._known

    def press(self, source: str = "button", note: Optional[str] = None, by: Optional[str] = None,
              device: Optional[str] = None, at: object = None, idem: Optional[str] = None) -> State:
        """One press; a physical one (gpio, keyboard) is kept on local disk first and never refused.

        A physical press made while Redis is unreachable returns the last known state and
        is stored in Redis, in order and once, when it is back. A device's press (store.py)
        is checked (device there, id not seen, rate) and stored in one script.
        """
        note = check_note(note)
        by = check_by(by)
        idem = check_idem(idem)
        now = now_iso()
        pressed_at = check_pressed_at(at, now)
        if device is not None:
            reply = self._write("press", "store a press", (
                source, note or "", "", 0, pressed_at or "", by or "", name_key(by) or "", local_month(now),
                name_key(device), idem or "", parse_time(now, "now").timestamp(), DEVICE_RATE, DEVICE_WINDOW,
                IDEM_SECONDS))
            if reply.get("unknown_device"):
                raise UnknownDevice(f"no device named {device!r}")
            if reply.get("too_fast"):
                raise TooFast(int(reply["too_fast"]))
            if reply.get("duplicate"):
                raise Duplicate(self._remember(reply))
            return self._remember(reply)
        if source in PHYSICAL and self.outbox:
            uid = self.outbox.add(now_iso(), source, note, by)
            if self._live:
                try:
                    stored = self._run(self._drain(), "store a button press")
                    if uid in stored:
                        return stored[uid]
                except StoreError as e:
                    log.warning("button press kept on disk until Redis is back: %s", e)
            else:
                log.warning("button press kept on disk until Redis at %s is back (%d waiting)",
                            self.where, self.outbox.pending)
            return self.state()
        reply = self._write("press", "store a press", (source, note or "", "", 0, "", by or "", name_key(by) or "",
                                                       local_month(now_iso())))
        return self._remember(reply)

    async def _device_script(self, name: str, args: tuple) -> Any:
        return await self._scripts[name](keys=self._device_keys, args=list(args))

    def add_device(self, name: object, kind: object, by: object, secret_hash: str) -> Dict[str, Any]:
        """A new device (see store.py), shared by every server on this key; DeviceExists when the name is taken."""
        checked_name, checked_kind, checked_by = check_device_name(name), check_kind(kind), check_by(by)
        device = {"name": checked_name, "kind": checked_kind, "by": checked_by, "created": now_iso(),
                  "last_seen": None, "presses": 0}
        stored: Dict[str, Any] = dict(device, hash=secret_hash, uid=uuid.uuid4().hex, recent=[])
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        answer = self._run(self._device_script("device_add", (name_key(checked_name), json.dumps(stored),
                                                               secret_hash)), "add a device")
        if answer == "exists":
            raise DeviceExists(f"a device named {checked_name!r} is already there")
        return device

    def devices(self) -> List[Dict[str, Any]]:
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        rows = self._run(self._redis.hvals(self._device_keys[0]), "read the devices")
        devices = [json.loads(row) for row in rows]
        devices.sort(key=lambda d: (d.get("seq", 0), d["created"]))  # the order of adding (two can share a millisecond)
        return [{k: d.get(k) for k in ("name", "kind", "by", "created", "last_seen")} | {"presses": d.get("presses", 0)}
                for d in devices]

    def remove_device(self, name: str) -> None:
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        answer = self._run(self._device_script("device_remove", (name_key(str(name)),)), "remove a device")
        if answer == "unknown":
            raise UnknownDevice(f"no device named {name!r}")

    def device_by_secret(self, secret_hash: str) -> Optional[Dict[str, Any]]:
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        raw = self._run(self._device_script("device_find", (secret_hash,)), "read the devices")
        if not raw:
            return None
        d = json.loads(raw)
        return {"name": d["name"], "kind": d["kind"], "by": d.get("by"), "hash": d["hash"]}

    def undo(self) -> State:
        """Revert the latest press not yet undone, after the latest set or new round."""
        reply = self._write("undo", "undo a press")
        if reply.get("nothing"):
            raise NothingToUndo("there is no press to undo")
        return self._remember(reply)

    def set(self, count: Optional[int] = None, goal: Optional[int] = None,
            title: Optional[str] = None) -> State:
        """Set the count, goal and/or title (None: unchanged; title "": the default), atomically."""
        if goal is not None:
            check_goal(goal)
        if count is not None:
            check_count(count)
        mode, new_title = "keep", ""
        if title is not None:
            checked = check_title(title)
            mode, new_title = ("clear", "") if checked is None else ("set", checked)
        reply = self._write("set", "set the count", (
            "" if count is None else count, "" if goal is None else goal, mode, new_title))
        if reply.get("too_big"):
            check_count(count, reply["goal"])  # raises InvalidValue in store.py's words
        return self._remember(reply)

    def new_round(self, since: Optional[str] = None, until: Optional[str] = None) -> Optional[State]:
        """Start a new round (count = goal) unless the newest round started at or after ``since``
        (and, with ``until``, not after it: a clock since set back stamped that one)."""
        since_utc = "" if since is None else utc_ms(since, "since")
        until_utc = "" if until is None else utc_ms(until, "until")
        reply = self._write("round", "start a new round", (since_utc, until_utc))
        if reply.get("nothing"):
            return None
        return self._remember(reply)

    def history(self, limit: int = 50, before: Optional[int] = None) -> List[dict]:
        """Presses newest first, at most ``limit`` (1-1000), only ids below ``before`` when given."""
        check_page(limit, before)
        rows = self._read("history", "read the history", ("" if before is None else before, limit))
        presses = []
        for i in range(0, len(rows), 2):
            p = json.loads(rows[i + 1])
            presses.append({"id": int(rows[i]), "at": p["at"], "source": p["source"],
                            "count_before": p["before"], "count_after": p["after"],
                            "undone": bool(p["undone"]), "note": p.get("note"), "by": p.get("by"),
                            "device": p.get("device")})
        return presses

    def rounds(self) -> List[dict]:
        """The latest rounds (at most 1000), newest (the current one) first."""
        rows = self._read("rounds", "read the rounds", (MAX_ROUNDS,))
        rounds = []
        for row in rows:
            r = json.loads(row)
            rounds.append({"started": r["started"], "ended": r.get("ended"), "goal": r["goal"],
                           "presses": r["presses"], "reached": bool(r["reached"])})
        return rounds

    def leaderboard(self, period: str = "round", since: Optional[str] = None) -> Dict[str, Any]:
        """Who pressed most (see Repository.leaderboard), from the tallies the press and undo scripts keep."""
        check_period(period)
        scope = period
        if period == "month":
            scope = "month:" + local_month(since or now_iso())
        reply = json.loads(self._read("leaders", "read the leaderboard", (scope,)))
        started = reply.get("since") or None
        if period == "month":
            started = since
        leaders = reply.get("leaders") or []  # Lua's cjson writes an empty list as {}
        return {"period": period, "since": started, "leaders": list(leaders), "unattributed": reply["unattributed"]}

    def _read(self, name: str, what: str, extra: tuple) -> Any:
        if not self._live:
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {self._reason}")
        return self._run(self._call(name, extra), what)

    def health(self) -> dict:
        """Reachable or not, and why; cheap, touches no lock (the IOLoop calls it)."""
        health: Dict[str, Any] = {"kind": "redis", "ok": self._live, "live": self._live,
                                  "redis": self.where, "key": self.key, "durable": self.durable}
        if self.outbox is not None:
            health["waiting_presses"] = self.outbox.pending
        if not self._live:
            health["error"] = f"Redis unreachable: {self._reason}"
        if self.warning:
            health["warning"] = self.warning
        return health

    def close(self) -> None:
        """Stop following, close the connections and the outbox; waits at most a few seconds."""
        if self._closing:
            return
        self._closing = True

        async def stop() -> None:
            self._follower.cancel()
            try:
                await self._follower
            except BaseException:  # cancelled, or already ended with its error logged
                pass
            await (self._redis.aclose() if hasattr(self._redis, "aclose") else self._redis.close())

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        except Exception as e:  # closing a connection that is already gone
            log.debug("closing the Redis client: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if self.outbox:
            self._save_known()
            self.outbox.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _no_retry():
    """redis-py retries a command after a lost connection by default; a press must not run twice."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 0)
