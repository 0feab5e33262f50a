"""The round's recap when the goal is reached: its figures from the store, and on the page in Chromium."""
import datetime

from playwright.sync_api import expect

from Repository import Repository
from tests.conftest import TOKEN, ServerProcess
from tests.test_leaders_page import boxes_apart
from tests.test_page import Watched, browser, playwright  # noqa: F401  (fixtures)
from thebutton.recap import recap_of


class Clock:
    def __init__(self):
        self.now = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)

    def __call__(self):
        return self.now.isoformat(timespec="milliseconds")

    def wait(self, **kw):
        self.now += datetime.timedelta(**kw)


def test_recap_figures(db_path):
    """Took, against the median of past rounds that reached the goal ("first round": none); presses, top 3,
    the round's last note (not an undone one); nothing while the goal is not reached."""
    clock = Clock()
    with Repository(db_path, goal=3, clock=clock) as store:
        store.press(by="Ana", note="Old deal")
        assert recap_of(store) is None
        clock.wait(hours=1)
        store.press(by="Ben")
        clock.wait(hours=1)
        store.press(by="Ana", note="Acme Corp")
        first = recap_of(store)
        assert first["took"] == 2 * 3600 and first["usual"] is None and first["presses"] == 3
        assert first["leaders"] == [{"by": "Ana", "presses": 2}, {"by": "Ben", "presses": 1}]
        assert first["note"] == "Acme Corp"
        for hours, note in ((4, "Big one"), (1, None)):  # round 2 in 5 h: wrap, then 3 presses
            store.press()  # the wrap starts the round
            clock.wait(hours=hours)
            store.press(note=note)
            store.press(note="Undone one")
            store.undo()
            store.press()
            clock.wait(hours=1)
            store.press()
        second = recap_of(store)
        assert second["took"] == 2 * 3600 and second["usual"] == (2 * 3600 + 5 * 3600) / 2
        assert second["note"] is None  # its notes are an undone press's and a press of the round before


def test_the_page_shows_the_recap_until_the_next_press(browser, db_path):  # noqa: F811
    """Reaching the goal shows the recap with the celebration; a page opened then shows it too; the next press
    (a new round) takes it away."""
    server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, "--goal=3").start()
    try:
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        w = Watched(context, server).open(sound=False)
        server.request("POST", "/api/press", {"by": "Ana"})
        server.request("POST", "/api/press", {"by": "Ben", "note": "Acme Corp"})
        expect(w.page.locator("#recap")).to_be_hidden()
        server.request("POST", "/api/press", {"by": "Ana"})
        expect(w.page.locator("#recap")).to_be_visible()
        expect(w.page.locator("#cheer")).to_be_visible()
        expect(w.page.locator("#recap-usual")).to_have_text("The first round")
        expect(w.page.locator("#recap-presses")).to_have_text("3 presses")
        expect(w.page.locator("#recap-note")).to_have_text("Last: “Acme Corp”")
        expect(w.page.locator("#recap-leaders li")).to_have_count(2)
        w.page.evaluate("document.getAnimations().forEach(a => "
                        "a.effect.getComputedTiming().endTime !== Infinity && a.finish())")
        recap = w.page.locator("#recap").bounding_box()
        for selector in ("#dial", "#note", "#cheer", "#mute", "#status", "#history"):
            other = w.page.locator(selector)
            if other.is_visible():
                assert boxes_apart(recap, other.bounding_box()), selector
        w.page.screenshot(path="/tmp/recap-laptop.png")
        later = Watched(context, server).open(sound=False)
        expect(later.page.locator("#recap")).to_be_visible()
        server.request("POST", "/api/press")  # the wrap: a new round
        expect(w.page.locator("#count")).to_have_text("3")
        expect(w.page.locator("#recap")).to_be_hidden()
        expect(later.page.locator("#recap")).to_be_hidden()
        w.check_clean()
        later.check_clean()
        context.close()
    finally:
        server.stop()
