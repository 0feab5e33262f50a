"""The one change path: from any thread to the IOLoop once, then to every listener, liveness included."""
import logging
import threading

from tornado.testing import AsyncTestCase, ExpectLog, gen_test

from tests.conftest import until
from thebutton.changes import Changes
from thebutton.feed import Feed
from thebutton.metrics import Metrics
from thebutton.store import Change, State
from thebutton.webhooks import Webhooks

STATE = State(count=4, goal=5, presses=1, serial=1)


class ChangePathTest(AsyncTestCase):
    @gen_test
    async def test_a_change_from_another_thread_reaches_every_listener_on_the_ioloop(self):
        """publish() from a store's thread; each listener hears the change once, on the IOLoop thread."""
        changes = Changes(self.io_loop)
        heard = []
        loop_thread = threading.get_ident()
        for name in ("first", "second"):
            changes.listen(lambda change, name=name: heard.append((name, change.event, threading.get_ident())))
        thread = threading.Thread(target=changes.publish, args=(Change("press", STATE, source="gpio"),))
        thread.start()
        thread.join()
        await until(lambda: len(heard) == 2)
        assert heard == [("first", "press", loop_thread), ("second", "press", loop_thread)]

    @gen_test
    async def test_a_failing_listener_does_not_keep_the_change_from_the_others(self):
        changes = Changes(self.io_loop)
        heard = []

        def broken(change):
            raise RuntimeError("broken listener")
        changes.listen(broken)
        changes.listen(heard.append)
        with ExpectLog("button.changes", "a listener failed on a press change", level=logging.ERROR):
            changes.fire(Change("press", STATE))
        assert [c.event for c in heard] == ["press"]


def test_not_live_is_a_change_the_feed_shows_and_the_others_hear():
    """A "live" change turns the feed's live off and back on; metrics and webhooks take it in their stride."""
    feed = Feed(STATE)
    metrics = Metrics(feed)
    sent = []
    feed.send_updates = lambda state, event, **extra: sent.append((event, feed.live))  # the sockets' side
    hooks = Webhooks(["http://127.0.0.1:9/hook"])
    queued = []
    for target in hooks.targets:
        target.put = queued.append
    away = Change("live", STATE, live=False)
    for listener in (feed.on_change, metrics.on_change, hooks.on_change):
        listener(away)
    assert feed.live is False and sent == [("state", False)]
    assert '"live": false' in feed.message("state")
    feed.on_change(away)  # told again: nothing new for the pages
    assert sent == [("state", False)]
    feed.on_change(Change("live", STATE, live=True))
    assert feed.live is True and sent[-1] == ("state", True)
    assert "live" not in feed.message("state")
    assert queued == []  # no chat hears that Redis went away
    assert b"the_button_presses_total{" not in metrics.exposition()  # and no metric counted a press


def test_mqtt_state_says_not_live_while_the_store_is_out_of_reach():
    """The MQTT bridge hears a "live" change like any other: its retained state carries "live": false."""
    import json

    from thebutton.mqtt import MqttBridge

    bridge = MqttBridge("mqtt://127.0.0.1:1", store=None, topic="t")  # never started: no connection is made
    published = []
    bridge.client.publish = lambda topic, body, **kwargs: published.append((topic, json.loads(body)))
    bridge.connected = True
    bridge.on_change(Change("live", STATE, live=False))
    assert published[-1] == ("t/state", {"count": 4, "goal": 5, "presses": 1, "title": None, "live": False})
    bridge.on_change(Change("live", STATE, live=True))
    assert "live" not in published[-1][1]
