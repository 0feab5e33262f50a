"""MQTT against a real mosquitto: state, retained state, discovery, availability, commands, broker restarts."""
import json
import logging
import signal
import time

import pytest
import tornado.gen
import tornado.util
from tornado.testing import ExpectLog, gen_test

from tests.conftest import TOKEN as PROCESS_TOKEN
from tests.conftest import until
from tests.mosquitto import Broker, Subscriber
from tests.test_server import AUTH, ServerTestCase
from thebutton.mqtt import MqttBridge, command_press, parse_url
from thebutton.store import InvalidValue

TOPIC = "the-button"


class Recorder(logging.Handler):
    """Every log line of the process while a test runs, to look for secrets."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class MqttTestCase(ServerTestCase):
    commands = False
    users = None
    url_auth = ""
    broker_up = True  # False: the broker is not started before the server
    bridge_options = {}

    def setUp(self):
        self.broker = Broker(users=self.users)
        if self.broker_up:
            self.broker.start()
        self.subscribers = []
        self.recorder = Recorder()
        logging.getLogger().addHandler(self.recorder)
        logging.getLogger("button").setLevel(logging.DEBUG)
        super().setUp()

    def get_app(self):
        app = super().get_app()
        url = "mqtt://%s127.0.0.1:%d" % (self.url_auth, self.broker.port)
        self.bridge = MqttBridge(url, self.repository, topic=TOPIC, commands=self.commands, loop=self.io_loop,
                                 **self.bridge_options)
        self.changes.listen(self.bridge.on_change)
        self.bridge.start(self.feed.state)
        return app

    def tearDown(self):
        self.io_loop.run_sync(self.bridge.close)
        for sub in self.subscribers:
            sub.close()
        super().tearDown()
        self.broker.cleanup()
        logging.getLogger().removeHandler(self.recorder)

    def subscribe(self, *topics, **kw):
        sub = Subscriber(self.broker, list(topics), **kw)
        self.subscribers.append(sub)
        return sub

    async def wait(self, sub, predicate, timeout=10.0, after=0):
        """A subscriber's blocking wait, off the IOLoop so the server keeps running."""
        return await self.io_loop.run_in_executor(None, lambda: sub.wait_for(predicate, timeout, after))

    async def connected(self):
        sub = self.subscribe(TOPIC + "/availability")
        await self.wait(sub, lambda m: m.payload == b"online")

    async def press(self):
        response = await self.http_client.fetch(self.get_url("/api/press"), method="POST", body=b"", headers=AUTH)
        return json.loads(response.body)


def state_is(count):
    return lambda m: m.topic == TOPIC + "/state" and m.json()["count"] == count


class StateTest(MqttTestCase):
    @gen_test(timeout=30)
    async def test_state_after_a_press(self):
        """A press is published as JSON state on <topic>/state, retained."""
        await self.connected()
        sub = self.subscribe(TOPIC + "/state")
        await self.wait(sub, state_is(3))
        await self.press()
        message = await self.wait(sub, state_is(2))
        assert message.json() == {"count": 2, "goal": 3, "presses": 1, "title": None}

    @gen_test(timeout=30)
    async def test_state_title_is_the_page_heading(self):
        """Given the feed's heading, the state's "title" is the heading the page shows, also after a new title."""
        self.bridge.heading = self.feed.heading
        await self.connected()
        sub = self.subscribe(TOPIC + "/state")
        await self.press()
        message = await self.wait(sub, state_is(2))
        assert message.json()["title"] == "Countdown to 3" == self.feed.heading()
        await self.http_client.fetch(self.get_url("/api/count"), method="PUT", body=b'{"title": "Sales"}',
                                     headers=AUTH)
        message = await self.wait(sub, lambda m: m.json()["title"] == "Sales")
        assert message.json()["count"] == 2

    @gen_test(timeout=30)
    async def test_late_subscriber_gets_retained_state(self):
        """A subscriber that comes after the press gets the current state at once, as a retained message."""
        await self.connected()
        await self.press()
        await self.press()
        await self.wait(self.subscribe(TOPIC + "/state"), state_is(1))
        late = self.subscribe(TOPIC + "/state")
        message = await self.wait(late, lambda m: True)
        assert message.retain and message.json()["count"] == 1

    @gen_test(timeout=30)
    async def test_press_is_an_event(self):
        """Every press also goes out on <topic>/event for Home Assistant's event entity."""
        await self.connected()
        sub = self.subscribe(TOPIC + "/event")
        await self.press()
        message = await self.wait(sub, lambda m: True)
        body = message.json()
        assert (body["event_type"], body["count"], body["source"]) == ("press", 2, "api")
        assert not message.retain

    @gen_test(timeout=30)
    async def test_discovery_configs(self):
        """Retained Home Assistant configs: a count sensor (measurement), the goal, one shared device, unique ids."""
        await self.connected()
        sub = self.subscribe("homeassistant/#")
        count = await self.wait(sub, lambda m: m.topic == "homeassistant/sensor/the-button/count/config")
        goal = await self.wait(sub, lambda m: m.topic == "homeassistant/sensor/the-button/goal/config")
        event = await self.wait(sub, lambda m: m.topic == "homeassistant/event/the-button/press/config")
        configs = [count.json(), goal.json(), event.json()]
        assert all(m.retain for m in (count, goal, event))
        # Home Assistant 2025.10+ reads default_entity_id (2026.4 dropped object_id): stable ids we chose.
        assert [c["default_entity_id"] for c in configs] == [
            "sensor.the_button_count", "sensor.the_button_goal", "event.the_button_press_event"]
        assert configs[0]["state_class"] == "measurement"
        assert configs[0]["state_topic"] == TOPIC + "/state" and "count" in configs[0]["value_template"]
        assert len({c["unique_id"] for c in configs}) == 3
        assert all(c["availability_topic"] == TOPIC + "/availability" for c in configs)
        device = configs[0]["device"]
        assert device["identifiers"] and device["name"]
        assert all(c["device"] == device for c in configs)
        # Without --mqtt-commands there are no buttons to offer.
        assert not [m for m in sub.messages if "/button/" in m.topic and m.payload]

    @gen_test(timeout=30)
    async def test_availability_online_then_offline_on_clean_stop(self):
        """The bridge says "online" (retained) when connected and "offline" (retained) when it stops."""
        sub = self.subscribe(TOPIC + "/availability")
        online = await self.wait(sub, lambda m: m.payload == b"online")
        await self.bridge.close()
        await self.wait(sub, lambda m: m.payload == b"offline")
        late = self.subscribe(TOPIC + "/availability")
        message = await self.wait(late, lambda m: True)
        assert online is not None and message.retain and message.payload == b"offline"

    @gen_test(timeout=30)
    async def test_commands_are_ignored_without_the_option(self):
        """Without --mqtt-commands, a message on <topic>/press changes nothing."""
        await self.connected()
        sub = self.subscribe(TOPIC + "/state")
        await self.wait(sub, state_is(3))
        sub.publish(TOPIC + "/press", b"")
        sub.publish(TOPIC + "/undo", b"")
        with pytest.raises(AssertionError):
            await self.wait(sub, state_is(2), timeout=0.5)
        assert self.repository.state().count == 3


class CommandTest(MqttTestCase):
    commands = True

    @gen_test(timeout=30)
    async def test_press_and_undo_commands(self):
        """With --mqtt-commands, <topic>/press presses (source mqtt) and <topic>/undo undoes; pages see both."""
        await self.connected()
        ws = await self.ws_connect()
        await self.read_json(ws)
        sub = self.subscribe(TOPIC + "/state")
        sub.publish(TOPIC + "/press", b"")
        msg = await self.read_json(ws)
        assert (msg["count"], msg["event"], msg["source"]) == (2, "press", "mqtt")
        assert self.repository.history(1)[0]["source"] == "mqtt"
        sub.publish(TOPIC + "/press", b"PRESS")  # Home Assistant's default payload
        assert (await self.read_json(ws))["count"] == 1
        sub.publish(TOPIC + "/undo", b"")
        msg = await self.read_json(ws)
        assert (msg["count"], msg["event"]) == (2, "undo")
        await self.wait(sub, state_is(2), after=0)

    @gen_test(timeout=30)
    async def test_two_servers_obeying_commands_press_once(self):
        """Two bridges with commands on one shared store: each press command presses once, not once per server."""
        url = "mqtt://127.0.0.1:%d" % self.broker.port
        second = MqttBridge(url, self.repository, topic=TOPIC, commands=True, loop=self.io_loop)
        second.start(self.feed.state)
        try:
            await self.connected()
            await until(lambda: self.bridge.connected and second.connected)
            ws = await self.ws_connect()
            await self.read_json(ws)
            sub = self.subscribe(TOPIC + "/state")
            sub.publish(TOPIC + "/press", b"")
            sub.publish(TOPIC + "/press", b"")
            counts = [(await self.read_json(ws))["count"] for _ in range(2)]
            assert counts == [2, 1]
            # A third message would be a doubled press; none comes within a short bounded wait.
            with pytest.raises(tornado.util.TimeoutError):
                await tornado.gen.with_timeout(self.io_loop.time() + 0.5, ws.read_message())
            assert self.repository.state().presses == 2
        finally:
            await second.close()

    @gen_test(timeout=30)
    async def test_press_command_with_a_note(self):
        """A press command's JSON payload {"note": ...} is stored with the press and shown on the pages."""
        await self.connected()
        ws = await self.ws_connect()
        await self.read_json(ws)
        events = self.subscribe(TOPIC + "/event")
        self.subscribe(TOPIC + "/state").publish(TOPIC + "/press", json.dumps({"note": "Acme Corp", "by": "Ana"}))
        msg = await self.read_json(ws)
        assert (msg["count"], msg["note"], msg["source"], msg["by"]) == (2, "Acme Corp", "mqtt", "Ana")
        assert self.repository.history(1)[0]["by"] == "Ana"
        event = await self.wait(events, lambda m: True)
        assert (event.json()["by"], event.json()["note"]) == ("Ana", "Acme Corp")

    @gen_test(timeout=30)
    async def test_bad_payload_is_logged_and_ignored(self):
        """A press command whose payload is neither empty nor {"note": ...} is logged and changes nothing."""
        await self.connected()
        ws = await self.ws_connect()
        await self.read_json(ws)
        sub = self.subscribe(TOPIC + "/state")
        with ExpectLog("button.mqtt", "MQTT: ignored a message on the-button/press"):
            sub.publish(TOPIC + "/press", b"not json")
            sub.publish(TOPIC + "/press", b'{"colour": "red"}')
            sub.publish(TOPIC + "/press", b"")  # a good one after the bad ones
            msg = await self.read_json(ws)
        assert msg["count"] == 2 and self.repository.state().count == 2

    @gen_test(timeout=30)
    async def test_button_configs_with_commands(self):
        """With --mqtt-commands, discovery offers Press and Undo buttons on the command topics."""
        await self.connected()
        sub = self.subscribe("homeassistant/button/#")
        press = await self.wait(sub, lambda m: m.topic.endswith("/press/config"))
        undo = await self.wait(sub, lambda m: m.topic.endswith("/undo/config"))
        assert press.json()["command_topic"] == TOPIC + "/press"
        assert undo.json()["command_topic"] == TOPIC + "/undo"
        assert press.json()["unique_id"] != undo.json()["unique_id"]


class RetainedCommandTest(MqttTestCase):
    """A retained command (mosquitto_pub -r) is never obeyed: not at start, not at a reconnect, not when cleared."""
    commands = True
    broker_up = False

    def get_app(self):
        # A retained PRESS waits on the broker before the server starts, as in the field.
        self.broker.cleanup()  # setUp's, never started: this one keeps retained messages on disk
        self.broker = Broker(persist=True).start()
        publisher = Subscriber(self.broker, ["unused/#"])
        publisher.publish(TOPIC + "/press", b"PRESS", retain=True)
        publisher.close()
        return super().get_app()

    def log_lines(self, words):
        return [line for line in self.recorder.lines if words in line]

    @gen_test(timeout=60)
    async def test_a_retained_press_is_never_counted(self):
        """At start, after the broker restarts (the retained PRESS comes again), and when it is cleared: no press;
        it is logged once; a plain press command still presses."""
        await self.connected()
        await until(lambda: self.log_lines("ignored a retained message on the-button/press"))
        for sub in self.subscribers:
            sub.close()
        self.subscribers.clear()
        self.broker.stop()  # a clean stop: the retained PRESS is kept on the broker's disk
        await until(lambda: not self.bridge.connected)
        connects = self.bridge.connects
        self.broker.start()
        await until(lambda: self.bridge.connects == connects + 1, timeout=30)
        sub = self.subscribe(TOPIC + "/state")
        await self.wait(sub, state_is(3))  # republished after the reconnect, and still 3
        sub.publish(TOPIC + "/press", b"", retain=True)  # clears it; live subscribers get an empty message
        await until(lambda: self.log_lines("was cleared"))
        assert self.repository.state().presses == 0 and self.repository.state().count == 3
        assert len(self.log_lines("ignored a retained message")) == 1  # once, not once per reconnect
        sub.publish(TOPIC + "/press", b"PRESS")  # not retained: a press
        await self.wait(sub, state_is(2))
        assert self.repository.state().presses == 1


class BrokerRestartTest(MqttTestCase):
    @gen_test(timeout=60)
    async def test_broker_killed_and_restarted(self):
        """While the broker is down presses go on at full speed; once it is back the state is republished."""
        await self.connected()
        ws = await self.ws_connect()
        await self.read_json(ws)
        for sub in self.subscribers:
            sub.close()
        self.subscribers.clear()
        self.broker.kill()
        await self.wait_disconnected()
        started = time.monotonic()
        answer = await self.press()
        msg = await self.read_json(ws)
        took = time.monotonic() - started
        assert answer["count"] == 2 and msg["count"] == 2
        assert took < 0.5, "a press took %.2f s with the broker down" % took
        connects = self.bridge.connects
        self.broker.start()  # same port, nothing retained: a crash lost it all
        sub = self.subscribe(TOPIC + "/state")
        await self.wait(sub, state_is(2), timeout=30)
        late = self.subscribe(TOPIC + "/state")
        message = await self.wait(late, lambda m: True)
        assert message.retain and message.json()["count"] == 2
        assert self.bridge.connects == connects + 1

    async def wait_disconnected(self):
        from tests.conftest import until
        await until(lambda: not self.bridge.connected)


class AuthTest(MqttTestCase):
    users = {"office": "pa55-w0rd"}
    url_auth = "office:pa55-w0rd@"

    @gen_test(timeout=30)
    async def test_user_and_password(self):
        """mqtt://user:password@host works with a broker that requires them, and the password is never logged."""
        sub = self.subscribe(TOPIC + "/state", user="office", password="pa55-w0rd")
        await self.press()
        await self.wait(sub, state_is(2))
        assert any("connected to mqtt://office@127.0.0.1" in line for line in self.recorder.lines)
        assert not any("pa55-w0rd" in line for line in self.recorder.lines)


class WrongPasswordTest(MqttTestCase):
    users = {"office": "pa55-w0rd"}
    url_auth = "office:wrong-secret@"

    @gen_test(timeout=30)
    async def test_wrong_password_is_logged_without_it_and_presses_go_on(self):
        """A refused login is logged (without the password); presses and the feed work all the same."""
        from tests.conftest import until
        await until(lambda: any("refused the connection" in line for line in self.recorder.lines))
        answer = await self.press()
        assert answer["count"] == 2 and not self.bridge.connected
        assert not any("wrong-secret" in line for line in self.recorder.lines)


class BrokerDownAtStartTest(MqttTestCase):
    broker_up = False
    users = {"office": "pa55-w0rd"}
    url_auth = "office:pa55-w0rd@"
    bridge_options = dict(max_delay=1)  # retry every second, so that the test is quick

    @gen_test(timeout=60)
    async def test_unreachable_broker_is_logged_once_then_connects(self):
        """A broker down at start is logged once (host:port, no password); once it is up the state is published."""
        await until(lambda: self.bridge.connect_failures >= 2)
        shown = "mqtt://office@127.0.0.1:%d" % self.broker.port
        warnings = [line for line in self.recorder.lines if "cannot reach" in line]
        assert warnings == ["MQTT: cannot reach %s; the server runs on and keeps trying with backoff" % shown]
        answer = await self.press()
        assert answer["count"] == 2 and not self.bridge.connected
        self.broker.start()
        sub = self.subscribe(TOPIC + "/state", user="office", password="pa55-w0rd")
        await self.wait(sub, state_is(2), timeout=30)
        late = self.subscribe(TOPIC + "/state", user="office", password="pa55-w0rd")
        message = await self.wait(late, lambda m: True)
        assert message.retain and message.json()["count"] == 2
        assert "MQTT: connected to %s again" % shown in self.recorder.lines
        assert not any("pa55-w0rd" in line for line in self.recorder.lines)


def test_url_parse():
    """--mqtt URLs give host, port (default 1883), user and password; bad ones a one-line error without the password."""
    assert parse_url("mqtt://broker.lan") == ("broker.lan", 1883, None, None)
    assert parse_url("mqtt://u:p%40ss@10.0.0.2:1884") == ("10.0.0.2", 1884, "u", "p@ss")
    assert str(parse_url("mqtt://u:secret@h:1")) == "mqtt://u@h:1"
    for bad in ("http://u:secret@h", "mqtt://u:secret@h:99999", "mqtt://u:secret@h/x", "mqtt://", "h:1883",
                "mqtt://u:secret@h:port"):
        with pytest.raises(ValueError) as e:
            parse_url(bad)
        assert "secret" not in str(e.value) and "mqtt://" in str(e.value)


def test_command_payloads():
    """A press payload may be empty, PRESS, or {"note": ..., "by": ...}; anything else is InvalidValue.

    The note and the name are the store's to check, as for the API (test_store_contract).
    """
    assert command_press(b"") == (None, None) and command_press(b"PRESS") == (None, None)
    assert command_press(b" {} ") == (None, None)
    assert command_press(b'{"note": "Acme Corp"}') == ("Acme Corp", None)
    assert command_press(b'{"note": "Acme Corp", "by": "Ana"}') == ("Acme Corp", "Ana")
    assert command_press(b'{"note": 5}') == (5, None)  # refused by the store's check_note
    for bad in (b"nope", b"[1]", b'{"x": 1}', b"[" * 5000):
        with pytest.raises(InvalidValue):
            command_press(bad)


def test_server_process_with_mqtt(server_factory, tmp_path):
    """python websocketserver.py --mqtt=... --mqtt-commands publishes, obeys a press, and says offline on SIGTERM."""
    with Broker() as broker:
        sub = Subscriber(broker, [TOPIC + "/state", TOPIC + "/availability"])
        try:
            server = server_factory("--button=none", "--admin-token=" + PROCESS_TOKEN, "--goal=5",
                                    "--mqtt=" + broker.url, "--mqtt-commands=true")
            sub.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online")
            sub.wait_for(state_is(5))
            sub.publish(TOPIC + "/press", b"")
            sub.wait_for(state_is(4))
            assert server.request("GET", "/api/count")[1]["count"] == 4
            mark = len(sub.messages)
            assert server.stop() == 0
            sub.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"offline", after=mark)
        finally:
            sub.close()


def test_killed_server_is_offline_by_its_will(server_factory):
    """When the server process is killed (SIGKILL, no goodbye), the broker publishes its will: "offline", retained."""
    availability = TOPIC + "/availability"
    with Broker() as broker:
        sub = Subscriber(broker, [availability])
        try:
            server = server_factory("--button=none", "--mqtt=" + broker.url)
            sub.wait_for(lambda m: m.payload == b"online")
            mark = len(sub.messages)
            server.proc.kill()
            assert server.proc.wait(10) == -signal.SIGKILL
            sub.wait_for(lambda m: m.payload == b"offline", after=mark)
        finally:
            sub.close()
        late = Subscriber(broker, [availability])
        try:
            message = late.wait_for(lambda m: True)
            assert message.retain and message.payload == b"offline"
        finally:
            late.close()


def test_bad_mqtt_url_is_a_startup_error(db_path):
    """A malformed --mqtt URL stops the server at start with one line, and without the password."""
    from tests.conftest import ServerProcess
    server = ServerProcess(db_path, "--button=none", "--mqtt=mqtt://u:hunter2@host:notaport")
    server.start(wait=False)
    assert server.proc.wait(15) != 0
    output = server.output()
    assert "--mqtt must look like" in output and "hunter2" not in output
