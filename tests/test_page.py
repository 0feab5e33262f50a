"""The countdown page in a real browser: Debian's Chromium driven by Playwright, against the real server."""
import os
import re
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from Repository import Repository
from tests.conftest import ROOT, TOKEN, ServerProcess

ARTIFACTS = os.path.join(ROOT, "artifacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


def launch(playwright):
    """Debian's Chromium; like any browser it keeps sound off until someone interacts with the page."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)


@pytest.fixture(scope="module")
def browser(playwright):
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture
def server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN).start()
    yield s
    s.stop()


class Watched:
    """A page with every console error, page error and request it made recorded."""

    def __init__(self, context, server):
        self.server = server
        self.page = context.new_page()
        self.errors = []
        self.expected_errors = None  # a regex for errors a test causes on purpose
        self.requests = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))

    def open(self, sound=True):
        """Load the page; with sound, click once as whoever sets up the TV does, so audio may start."""
        self.page.goto(self.server.url + "/")
        self.wait_live()
        if sound:
            self.page.locator("#enable-sound").click()
            expect(self.page.locator("body")).to_have_attribute("data-sound", "on")
        return self

    def wait_live(self):
        expect(self.page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)

    def hooks(self, name):
        return self.page.evaluate("window.theButton.%s" % name)

    def wait_horns(self, n):
        """Wait until the horn has sounded n times (it may wait for the audio device to start)."""
        expect(self.page.locator("body")).to_have_attribute("data-horns", str(n), timeout=3000)

    def check_clean(self):
        """No console errors, and nothing fetched from anywhere but our server."""
        unexpected = [e for e in self.errors
                      if not (self.expected_errors and re.search(self.expected_errors, e))]
        assert unexpected == []
        own = re.compile(r"^(http|ws)://127\.0\.0\.1:%d/" % self.server.port)
        strangers = [u for u in self.requests if not own.match(u) and not u.startswith("data:")]
        assert strangers == []


@pytest.fixture
def watched(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    w = Watched(context, server)
    yield w
    w.check_clean()
    context.close()


def test_first_paint_has_the_count_without_javascript(browser, server):
    """The count is in the HTML: right even before (or without) the WebSocket."""
    server.request("PUT", "/api/count", {"count": 13})
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.locator("#count").inner_text() == "13"
    assert float(page.locator("#progress").get_attribute("stroke-dashoffset")) == pytest.approx(65.0)
    context.close()


def test_press_updates_number_ring_and_plays_horn(watched):
    """A press shows the new count and ring within a second, and sounds the horn once."""
    w = watched.open()
    assert w.hooks("horns") == 0  # not on load
    assert w.page.locator("#count").inner_text() == "20"
    assert w.server.request("POST", "/api/press")[0] == 200
    expect(w.page.locator("#count")).to_have_text("19", timeout=1000)
    expect(w.page.locator("#progress")).to_have_attribute("stroke-dashoffset", "95.000", timeout=1000)
    w.wait_horns(1)
    assert w.page.title().startswith("19")


def test_undo_and_set_do_not_sound_the_horn(watched):
    """Only presses sound the horn."""
    w = watched.open()
    w.server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("19")
    w.wait_horns(1)
    w.server.request("POST", "/api/undo")
    expect(w.page.locator("#count")).to_have_text("20")
    w.server.request("PUT", "/api/count", {"count": 5})
    expect(w.page.locator("#count")).to_have_text("5")
    assert w.hooks("horns") == 1


def test_mute_is_remembered_across_reloads(watched):
    """Muted: no horn on a press; still muted after a reload."""
    w = watched.open()
    w.page.click("#mute")
    expect(w.page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    w.server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("19")
    assert w.hooks("horns") == 0
    w.page.reload()
    w.wait_live()
    expect(w.page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    w.server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("18")
    assert w.hooks("horns") == 0
    w.page.click("#mute")
    w.server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("17")
    w.wait_horns(1)


def test_server_restart_shows_offline_then_recovers(watched, db_path):
    """Server gone: the ":(" face shows. Server back: the page reconnects by itself with fresh state, no horn."""
    w = watched.open()
    w.expected_errors = r"^WebSocket connection to .* failed"  # Chromium logs each refused retry
    port = w.server.port
    w.server.stop()
    expect(w.page.locator("body")).to_have_attribute("data-state", "offline", timeout=5000)
    expect(w.page.locator("#face")).to_be_visible()
    w.page.screenshot(path=os.path.join(_artifacts(), "offline.png"))
    with Repository(db_path) as r:  # the count changes while the page cannot see it
        r.press()
        r.press()
    w.server = ServerProcess(db_path, "--button=none", "--admin-token=" + TOKEN, port=port).start()
    w.wait_live()
    expect(w.page.locator("#count")).to_have_text("18", timeout=5000)
    expect(w.page.locator("#face")).to_be_hidden()
    assert w.hooks("horns") == 0
    assert w.hooks("connects") == 2
    w.server.stop()


def test_new_page_version_reloads_open_pages(watched, db_path, tmp_path):
    """After an upgrade that changes the page, an open page loads the new version by itself."""
    w = watched.open()
    w.expected_errors = r"^WebSocket connection to .* failed"
    old_version = w.page.locator("body").get_attribute("data-version")
    copy = tmp_path / "upgraded"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "artifacts", "*.db*", ".venv", "__pycache__"))
    with open(copy / "static" / "style.css", "a") as f:
        f.write("\n/* upgraded */\n")
    port = w.server.port
    w.server.stop()
    upgraded = ServerProcess(db_path, "--button=none", port=port)
    upgraded.script = str(copy / "websocketserver.py")
    w.server = upgraded.start()
    expect(w.page.locator("body")).not_to_have_attribute("data-version", old_version, timeout=15000)
    w.wait_live()
    w.server.stop()


def test_goal_reached_celebrates(watched):
    """Count 0: the ring is full, "Goal reached!" shows and the confetti runs."""
    w = watched.open()
    w.server.request("PUT", "/api/count", {"count": 1})
    expect(w.page.locator("#count")).to_have_text("1")
    w.server.request("POST", "/api/press")
    expect(w.page.locator("#count")).to_have_text("0")
    expect(w.page.locator("#cheer")).to_be_visible()
    expect(w.page.locator("body")).to_have_class(re.compile(r"\bgoal\b"))
    expect(w.page.locator("#progress")).to_have_attribute("stroke-dashoffset", "0.000")
    assert w.hooks("celebrations") == 1
    assert w.page.locator("#confetti i").count() > 50
    w.page.screenshot(path=os.path.join(_artifacts(), "goal-1280x800.png"))


def test_blocked_sound_shows_enable_button(playwright, server):
    """Where the browser blocks sound until a gesture, a visible control says so and a click enables it."""
    b = launch(playwright)
    try:
        page = b.new_page()
        page.goto(server.url + "/")
        expect(page.locator("body")).to_have_attribute("data-state", "live")
        enable = page.locator("#enable-sound")
        expect(enable).to_be_visible()
        server.request("POST", "/api/press")
        expect(page.locator("#count")).to_have_text("19")
        # Read through the DOM: page.evaluate would count as a user gesture and unblock sound.
        expect(page.locator("body")).to_have_attribute("data-sound", "blocked")
        assert page.locator("body").get_attribute("data-horns") is None
        enable.click()
        expect(enable).to_be_hidden()
        expect(page.locator("body")).to_have_attribute("data-sound", "on")
        server.request("POST", "/api/press")
        expect(page.locator("#count")).to_have_text("18")
        expect(page.locator("body")).to_have_attribute("data-horns", "1", timeout=3000)
    finally:
        b.close()


@pytest.mark.parametrize("name, width, height", [
    ("tv", 1920, 1080), ("laptop", 1366, 768), ("phone", 390, 844), ("phone-landscape", 844, 390),
])
def test_screenshots_fit_every_screen(browser, server, name, width, height):
    """At TV, laptop and phone sizes everything is on screen and nothing overlaps the count."""
    server.request("PUT", "/api/count", {"count": 7})
    context = browser.new_context(viewport={"width": width, "height": height})
    w = Watched(context, server)
    w.open(sound=False)
    for selector in ("#title", "#count", "#dial", "#mute", "#status"):
        box = w.page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0 and box["y"] >= 0, selector
        assert box["x"] + box["width"] <= width + 1 and box["y"] + box["height"] <= height + 1, selector
    count, title = w.page.locator("#count").bounding_box(), w.page.locator("#title").bounding_box()
    assert title["y"] + title["height"] <= count["y"]
    w.page.screenshot(path=os.path.join(_artifacts(), "%s-%dx%d.png" % (name, width, height)))
    w.check_clean()
    context.close()


def _artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
