"""MQTT: the state on a broker for Home Assistant, Node-RED and the like; presses from it, if allowed.

A listener on the change path (``thebutton.changes.Changes``). Built on paho-mqtt
2.x, whose network thread (``loop_start``) connects, reconnects with backoff and reads;
``publish`` only queues for that thread, so the IOLoop may call it without waiting.

Threads: paho's network thread runs ``_on_connect``, ``_on_connect_fail``,
``_on_disconnect`` and ``_on_message``, and each only hands its work to the IOLoop with
``add_callback``.
Everything else runs on the IOLoop; a command's store write runs in the executor.

Topics under ``<topic>``: ``state`` (retained JSON after every change and on every
(re)connect), ``availability`` ("online"/"offline", retained; "offline" is the will),
``event`` (one JSON message per press, for Home Assistant's event entity), and with
commands on, ``press`` and ``undo``. Home Assistant discovery configs go (retained) under
``<discovery>/<component>/<node_id>/<object_id>/config``.

The bridge speaks MQTT 5 so that it can subscribe with "retain as published": then every
retained message on a command topic says so, also the empty one that clears it, which an
MQTT 3.1.1 broker would hand to live subscribers as a plain message. A retained command is
never obeyed: it would press again at every start and every reconnect.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any, Callable, Dict, NamedTuple, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

from tornado.ioloop import IOLoop

from thebutton.store import Change, InvalidValue, NothingToUndo, State, Store, StoreError

log = logging.getLogger("button.mqtt")

URL_FORM = "mqtt://[user[:password]@]host[:port]"


class BrokerAddress(NamedTuple):
    host: str
    port: int
    user: Optional[str]
    password: Optional[str]

    def __str__(self) -> str:
        # What a log may say: never the password.
        who = f"{self.user}@" if self.user else ""
        return f"mqtt://{who}{self.host}:{self.port}"


def parse_url(url: str) -> BrokerAddress:
    """The broker of an --mqtt URL; ValueError in one line (without the password) if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"--mqtt must look like {URL_FORM}: bad port") from None
    if parts.scheme != "mqtt":
        raise ValueError(f"--mqtt must look like {URL_FORM} (scheme {parts.scheme or 'missing'!r})")
    if not parts.hostname:
        raise ValueError(f"--mqtt must look like {URL_FORM}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--mqtt must look like {URL_FORM}: nothing may follow the port")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.hostname, port or 1883, user, password)


def node_id_of(topic: str) -> str:
    """The Home Assistant node id for a base topic: letters, digits, _ and - only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", topic).strip("_") or "the_button"


class MqttBridge:
    """Publishes every committed change to a broker and, with ``commands``, presses from it.

    ``store`` is the Repository or RedisStore: commands call ``store.press(source="mqtt")``
    and ``store.undo()`` in the executor. ``heading`` (the Feed's ``heading``) gives the
    state's "title" as the page shows it; without it "title" is the stored one (None for
    the default). Call ``start(state)`` on the IOLoop; a broker that is down does not
    block it (paho connects and reconnects in its own thread).
    """

    def __init__(self, url: str, store: Store, topic: str = "the-button", discovery: str = "homeassistant",
                 commands: bool = False, loop: Optional[IOLoop] = None, min_delay: float = 1.0,
                 max_delay: float = 60.0, keepalive: int = 30, device_name: str = "The Button",
                 heading: Optional[Callable[[State], str]] = None) -> None:
        import paho.mqtt.client as mqtt  # only when --mqtt is given

        self.mqtt = mqtt
        self.address = parse_url(url)
        self.store = store
        self.topic = topic.strip("/") or "the-button"
        self.discovery = discovery.strip("/")
        self.commands = commands
        self.loop = loop or IOLoop.current()
        self.node_id = node_id_of(self.topic)
        self.device_name = device_name
        self.heading = heading
        self.state: Optional[State] = None
        self.live = True  # the store keeps the count current (a "live" change says otherwise)
        self.connected = False  # as last heard on the IOLoop
        self.connects = 0  # successful connections so far (tests and logs)
        self.connect_failures = 0  # attempts that could not reach the broker (tests and logs)
        self.outage = False  # the broker is out of reach, and the log has said so once
        self.closing = False
        self.ignored_retained: Set[Tuple[str, bytes]] = set()  # retained commands logged once already
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"the-button-{uuid.uuid4().hex[:12]}")
        if self.address.user:
            self.client.username_pw_set(self.address.user, self.address.password)
        self.client.will_set(self.t("availability"), "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=max(1, int(min_delay)), max_delay=max(1, int(max_delay)))
        self.client.max_queued_messages_set(100)  # queued QoS 1 messages while the link is down
        self.client.connect_timeout = 5.0
        self.keepalive = keepalive
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def t(self, name: str) -> str:
        return f"{self.topic}/{name}"

    # -- the IOLoop side --

    def start(self, state: State) -> None:
        """Connect in paho's thread; returns at once, whether or not the broker is there."""
        self.state = state
        log.info("MQTT: connecting to %s (topic %s, discovery %s, commands %s)", self.address, self.topic,
                 self.discovery or "off", "on" if self.commands else "off")
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive)
        self.client.loop_start()

    def on_change(self, change: Change) -> None:
        """The listener on the change path (IOLoop thread): the new state, retained; a press as an event."""
        if self.state is not None and change.state.serial < self.state.serial:
            return  # an older commit arriving late
        self.state = change.state
        self.live = change.live
        if not self.connected:
            return  # it goes out on the next connect
        self.publish_state()  # retained and the same from every server: harmless when repeated
        if change.event == "press" and change.local:  # one event per press, from the server that stored it
            event = {"event_type": "press", "count": change.state.count, "goal": change.state.goal,
                     "source": change.source, "note": change.note, "by": change.by,
                     "device": change.device}
            self.client.publish(self.t("event"), json.dumps(event), qos=0)

    def publish_state(self) -> None:
        state = self.state
        if state is None:
            return
        title = self.heading(state) if self.heading else state.title
        body = {"count": state.count, "goal": state.goal, "presses": state.presses, "title": title}
        if not self.live:
            body["live"] = False  # the shared store is out of reach: the last state heard
        # QoS 0: nothing queues while the link is down; every connect republishes the state.
        self.client.publish(self.t("state"), json.dumps(body), qos=0, retain=True)

    def _connected(self) -> None:
        # IOLoop thread, after paho's thread heard a CONNACK.
        if self.closing:
            return
        self.connected = True
        self.connects += 1
        log.info("MQTT: connected to %s%s", self.address, " again" if self.outage else "")
        self.outage = False
        if self.commands:
            # Before "online": the broker handles one client's packets in order, so whoever
            # sees us online (Home Assistant) and presses at once is heard.
            # A shared subscription: when several servers share one count (--store) and obey
            # commands, the broker gives each command to one of them, so it presses once.
            from paho.mqtt.subscribeoptions import SubscribeOptions

            group = "$share/" + self.node_id + "/"
            keep_flag = SubscribeOptions(qos=1, retainAsPublished=True)  # a retained command says so
            self.client.subscribe([(group + self.t("press"), keep_flag), (group + self.t("undo"), keep_flag)])
        self.client.publish(self.t("availability"), "online", qos=1, retain=True)
        for topic, config in self.discovery_configs().items():
            body = json.dumps(config) if config is not None else ""  # "" removes a config
            self.client.publish(topic, body, qos=1, retain=True)
        self.publish_state()

    def _disconnected(self, reason: str) -> None:
        # IOLoop thread.
        if self.connected and not self.closing:
            log.warning("MQTT: lost %s (%s); reconnecting with backoff", self.address, reason)
            self.outage = True  # said once: the failed attempts that follow are the same outage
        self.connected = False

    def _connect_failed(self) -> None:
        # IOLoop thread, after paho's thread could not reach the broker (refused, no route, timeout).
        self.connect_failures += 1
        if self.closing or self.outage:
            return
        self.outage = True
        log.warning("MQTT: cannot reach %s; the server runs on and keeps trying with backoff", self.address)

    def discovery_configs(self) -> Dict[str, Optional[dict]]:
        """Home Assistant discovery topics and their configs (None: remove a config, e.g. buttons without commands)."""
        if not self.discovery:
            return {}
        device = {"identifiers": [self.node_id], "name": self.device_name,
                  "manufacturer": "The Button project", "model": "Push-button countdown"}
        common = {"availability_topic": self.t("availability"), "device": device}

        def entity(component: str, object_id: str, name: str, **fields) -> dict:
            # default_entity_id is what Home Assistant 2025.10 and later read for the entity id
            # (2026.4 dropped object_id); object_id stays for the releases before 2025.10.
            slug = f"{self.node_id}_{object_id}".replace("-", "_").lower()
            return dict(common, name=name, unique_id=f"{self.node_id}_{object_id}",
                        default_entity_id=f"{component}.{slug}", object_id=f"{self.node_id}_{object_id}", **fields)

        def topic(component: str, object_id: str) -> str:
            return f"{self.discovery}/{component}/{self.node_id}/{object_id}/config"

        state = self.t("state")
        configs: Dict[str, Optional[dict]] = {
            # measurement, not total_increasing: the count goes down, and back up to the goal.
            topic("sensor", "count"): entity("sensor", "count", "Count", state_topic=state, icon="mdi:counter",
                                             value_template="{{ value_json.count }}", state_class="measurement"),
            topic("sensor", "goal"): entity("sensor", "goal", "Goal", state_topic=state, icon="mdi:flag-checkered",
                                            value_template="{{ value_json.goal }}"),
            topic("event", "press"): entity("event", "press_event", "Pressed", state_topic=self.t("event"),
                                            event_types=["press"], icon="mdi:gesture-tap-button"),
        }
        buttons = {
            topic("button", "press"): entity("button", "press", "Press", command_topic=self.t("press"), icon="mdi:gesture-tap-button"),
            topic("button", "undo"): entity("button", "undo", "Undo", command_topic=self.t("undo"), icon="mdi:undo"),
        }
        for key, config in buttons.items():
            configs[key] = config if self.commands else None
        return configs

    async def command(self, name: str, payload: bytes) -> None:
        """A message on <topic>/press or <topic>/undo (IOLoop thread); the store write runs in the executor."""
        loop = IOLoop.current()
        try:
            if name == "press":
                note, by = command_press(payload)
                await loop.run_in_executor(None, lambda: self.store.press(source="mqtt", note=note, by=by))
            else:
                await loop.run_in_executor(None, self.store.undo)
        except InvalidValue as e:
            log.warning("MQTT: ignored a message on %s: %s", self.t(name), e)
        except NothingToUndo:
            log.info("MQTT: nothing to undo")
        except StoreError as e:
            log.error("MQTT %s NOT stored: %s", name, e)

    async def close(self) -> None:
        """Say "offline" (retained), disconnect and stop paho's thread, waiting at most ~2 s."""
        self.closing = True
        loop = IOLoop.current()
        if self.connected:
            info = self.client.publish(self.t("availability"), "offline", qos=1, retain=True)
            await loop.run_in_executor(None, _wait_published, info, 1.5)
        self.connected = False
        self.client.disconnect()
        await loop.run_in_executor(None, self.client.loop_stop)

    # -- paho's network thread: hand everything to the IOLoop --

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Wrong user or password, for instance: paho tries again with backoff.
            self.loop.add_callback(log.error, "MQTT: %s refused the connection: %s", self.address, str(reason_code))
            return
        self.loop.add_callback(self._connected)

    def _on_connect_fail(self, client, userdata) -> None:
        self.loop.add_callback(self._connect_failed)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.loop.add_callback(self._disconnected, str(reason_code))

    def _on_message(self, client, userdata, message) -> None:
        name = message.topic.rsplit("/", 1)[-1]
        if self.commands and name in ("press", "undo") and message.topic == self.t(name):
            if message.retain:
                self.loop.add_callback(self._retained_command, message.topic, bytes(message.payload))
                return
            self.loop.add_callback(self.command, name, bytes(message.payload))

    def _retained_command(self, topic: str, payload: bytes) -> None:
        # IOLoop thread. The broker keeps a retained command and hands it over at every
        # (re)connect: said once per topic and payload, never obeyed.
        key = (topic, payload[:200])
        if key in self.ignored_retained:
            return
        self.ignored_retained.add(key)
        if payload:
            log.warning("MQTT: ignored a retained message on %s (a command is never obeyed from a retained "
                        "message; clear it with: mosquitto_pub -r -n -t %s)", topic, topic)
        else:
            log.info("MQTT: the retained message on %s was cleared (not a press)", topic)


def command_press(payload: bytes) -> Tuple[Any, Any]:
    """The note and "by" of a press command: none for an empty payload or "PRESS"; JSON {"note": ..., "by": ...};
    else InvalidValue. The store checks both (thebutton/validation.py), as for the API.
    """
    text = payload.strip()
    if not text or text.upper() == b"PRESS":
        return None, None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidValue('payload must be empty, PRESS, or JSON such as {"note": "Acme Corp", "by": "Ana"}') from None
    if not isinstance(body, dict) or set(body) - {"note", "by"}:
        raise InvalidValue('payload must be empty, PRESS, or JSON such as {"note": "Acme Corp", "by": "Ana"}')
    return body.get("note"), body.get("by")


def _wait_published(info, timeout: float) -> None:
    # An executor thread: paho's MQTTMessageInfo.wait_for_publish blocks.
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):  # not queued (the link went down meanwhile)
        pass

