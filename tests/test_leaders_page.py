"""The round's top 3 on the countdown page, in Chromium against the real server."""
import pytest
from playwright.sync_api import expect

from tests.conftest import TOKEN, ServerProcess
from tests.test_page import Watched, browser, playwright  # noqa: F401  (fixtures)

LONG = "Benedikt Oberhollenzer-Wittgenstein Jr."  # 39 characters


def boxes_apart(a, b):
    return (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
            or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.fixture
def server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN).start()
    yield s
    s.stop()


def leaders_of(page):
    return [item.inner_text().split("\n") for item in page.locator("#leaders li").all()]


def test_top_3_appear_with_the_first_name_and_follow_the_presses(browser, server):  # noqa: F811
    """No names: no leaderboard. A press with "by" shows it at once, live; names are text, never markup;
    the note band says who; an undo and a new round update it; a page opened later shows it too."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    w = Watched(context, server).open(sound=False)
    server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("19")
    expect(w.page.locator("#leaders")).to_be_hidden()
    server.request("POST", "/api/press", {"by": "<b>Ana</b>", "note": "Acme Corp"})
    expect(w.page.locator("#leaders")).to_be_visible()
    expect(w.page.locator("#note")).to_have_text("<b>Ana</b> · Acme Corp")
    for by in ("Ben", "Ben", "Cleo", "Dan"):
        server.request("POST", "/api/press", {"by": by})
    expect(w.page.locator("#count")).to_have_text("14")
    assert [row[1:] for row in leaders_of(w.page)] == [["Ben", "2"], ["<b>Ana</b>", "1"], ["Cleo", "1"]]
    assert w.page.locator("#leaders b").count() == 0
    later = Watched(context, server).open(sound=False)
    expect(later.page.locator("#leaders li")).to_have_count(3)
    server.request("POST", "/api/undo")  # Dan's: not in the top 3 anyway
    server.request("POST", "/api/undo")  # Cleo's: Dan's first press... undone too, so Ana and Ben stay
    expect(w.page.locator("#leaders li")).to_have_count(2)
    server.request("PUT", "/api/count", {"count": 20})  # a new round, by hand
    expect(w.page.locator("#leaders")).to_be_hidden()
    w.check_clean()
    later.check_clean()
    context.close()


@pytest.mark.parametrize("name, width, height", [("tv", 1920, 1080), ("laptop", 1366, 768), ("phone", 390, 844)])
def test_top_3_fit_and_overlap_nothing(browser, server, name, width, height):  # noqa: F811
    """At TV, laptop and phone sizes the top 3 (a long name too) are on screen, under the ring, and clear of the
    corner controls and of the note band."""
    for by in ("Ana", LONG, "Ana", "Cleo"):
        server.request("POST", "/api/press", {"by": by})
    context = browser.new_context(viewport={"width": width, "height": height})
    w = Watched(context, server).open(sound=False)
    expect(w.page.locator("#leaders li")).to_have_count(3)
    server.request("POST", "/api/press", {"by": "Cleo", "note": "Acme Corp renewed for three more years"})
    expect(w.page.locator("#note")).to_be_visible()
    w.page.evaluate("document.getAnimations().forEach(a => a.finish())")
    leaders = w.page.locator("#leaders").bounding_box()
    assert leaders["x"] >= 0 and leaders["x"] + leaders["width"] <= width and leaders["y"] + leaders["height"] <= height
    dial = w.page.locator("#dial").bounding_box()
    assert dial["y"] + dial["height"] <= leaders["y"] + 1  # under the ring, not on it
    for selector in ("#note", "#mute", "#enable-sound", "#status", "#history", "#title"):
        other = w.page.locator(selector)
        if other.is_visible():
            assert boxes_apart(leaders, other.bounding_box()), selector
    w.page.screenshot(path="/tmp/leaders-%s.png" % name)
    w.check_clean()
    context.close()


def test_leaderboard_off_never_shows_it(browser, db_path):  # noqa: F811
    server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, "--leaderboard=off").start()
    try:
        context = browser.new_context()
        w = Watched(context, server).open(sound=False)
        server.request("POST", "/api/press", {"by": "Ana"})
        expect(w.page.locator("#count")).to_have_text("19")
        expect(w.page.locator("#leaders")).to_be_hidden()
        assert w.page.locator("#leaders li").count() == 0
        context.close()
    finally:
        server.stop()
