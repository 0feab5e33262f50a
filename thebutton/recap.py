"""The round's recap, shown on every page from the press that reaches the goal until the next press.

A listener on the change path: when a committed state has reached the goal (count 0), the
recap is read from the store in an executor thread (the rounds, the round's leaders and its
latest presses) and handed to the feed, which sends it to every page and to every page that
opens while the count stays at 0. Any store works; nothing is stored.
"""
from __future__ import annotations

import logging
import statistics
from typing import Any, Dict, Optional

from tornado.ioloop import IOLoop

from thebutton.feed import Feed
from thebutton.store import Change, Store, StoreError
from thebutton.validation import parse_time

log = logging.getLogger("button.recap")

NOTE_LOOKBACK = 100  # latest presses searched for the round's last note


def seconds(started: str, ended: str) -> float:
    return (parse_time(ended, "ended") - parse_time(started, "started")).total_seconds()


def recap_of(store: Store) -> Optional[Dict[str, Any]]:
    """The recap of the round that reached the goal last, or None when the newest round has not. Store thread."""
    rounds = store.rounds()
    if not rounds or not rounds[0]["reached"] or not rounds[0]["ended"]:
        return None
    done = rounds[0]
    past = [seconds(r["started"], r["ended"]) for r in rounds[1:] if r["reached"] and r["ended"]]
    started = parse_time(done["started"], "started")
    note = None
    for press in store.history(limit=NOTE_LOOKBACK):
        if parse_time(press["at"], "at") < started:
            break
        if press["note"] and not press["undone"]:
            note = press["note"]
            break
    leaders = store.leaderboard("round")["leaders"][:3]
    return {"took": max(0.0, seconds(done["started"], done["ended"])),
            "usual": statistics.median(past) if past else None,
            "presses": done["presses"], "goal": done["goal"],
            "leaders": [{"by": leader["by"], "presses": leader["presses"]} for leader in leaders],
            "note": note}


class Recaps:
    """Keeps the feed's recap: read when the goal is reached, dropped when the count moves on."""

    def __init__(self, store: Store, feed: Feed, loop: Optional[IOLoop] = None) -> None:
        self.store = store
        self.feed = feed
        self.loop = loop or IOLoop.current()
        self._asked = 0  # serial of the state the latest read was for

    def start(self) -> None:
        """A server that starts while the goal stands (a restart during the recap) shows it too."""
        if self.feed.state.count == 0:
            self.loop.add_callback(self.read, self.feed.state.serial)

    def on_change(self, change: Change) -> None:
        """The listener on the change path (IOLoop thread)."""
        if change.event == "live":
            return
        if change.state.count != 0:
            self.feed.set_recap(None)
        elif change.state.serial >= self._asked:
            self.loop.add_callback(self.read, change.state.serial)

    async def read(self, serial: int) -> None:
        self._asked = serial
        try:
            recap = await self.loop.run_in_executor(None, recap_of, self.store)
        except StoreError as e:
            log.warning("the round's recap could not be read: %s", e)
            return
        if serial == self._asked and self.feed.state.count == 0:  # still the goal, and no newer read asked
            self.feed.set_recap(recap)

