"""The countdown page in a real browser: Debian's Chromium driven by Playwright, against the real server."""
import datetime
import os
import re

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
    """A page with every console error, page error and request it made recorded.

    With ``via`` (a Proxy) the page is loaded, and talks to the server, through the proxy.
    """

    def __init__(self, context, server, via=None):
        self.server = server
        self.via = via
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
        self.page.goto(self.url + "/")
        self.wait_live()
        if sound:
            self.page.locator("#enable-sound").click()
            expect(self.page.locator("body")).to_have_attribute("data-sound", "on")
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.via.port if self.via else self.server.url

    def wait_until(self, condition, timeout=15000):
        """Wait for a condition on window.theButton (polled in the page by Playwright)."""
        self.page.wait_for_function("() => { const b = window.theButton; return %s; }" % condition,
                                    timeout=timeout)

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
        port = self.via.port if self.via else self.server.port
        own = re.compile(r"^(http|ws)://127\.0\.0\.1:%d/" % port)
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
    assert w.hooks("feed.connects") == 2
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


def quiet(cdp, expression):
    """Evaluate in the page through CDP without a user gesture (Playwright's own calls count as one)."""
    reply = cdp.send("Runtime.evaluate", {
        "expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": False,
    })
    assert "exceptionDetails" not in reply, reply
    return reply["result"].get("value")


def quietly_wait(cdp, condition, timeout=10000):
    """Wait, without a gesture, until a condition on the page holds (checked on each DOM change)."""
    return quiet(cdp, """new Promise(function (resolve, reject) {
        const check = function () { const b = window.theButton; return b && (%s); };
        if (check()) { resolve(true); return; }
        const seen = new MutationObserver(function () { if (check()) { seen.disconnect(); resolve(true); } });
        seen.observe(document.documentElement, {attributes: true, childList: true, subtree: true, characterData: true});
        setTimeout(function () { seen.disconnect(); reject(new Error("timed out: %s")); }, %d);
    })""" % (condition, condition.replace('"', "'"), timeout))


def test_blocked_sound_shows_enable_button(playwright, server):
    """Where the browser blocks sound until a gesture, a visible control says so, a horn is not played late, and a click enables it."""
    b = launch(playwright)
    try:
        page = b.new_page()
        # Every Playwright query gives the page a user gesture, which would let sound start:
        # until the click below the page is read through CDP without one.
        cdp = page.context.new_cdp_session(page)
        page.goto(server.url + "/")
        quietly_wait(cdp, "document.body.dataset.state === 'live'")
        assert quiet(cdp, "document.getElementById('enable-sound').hidden") is False
        server.request("POST", "/api/press")
        quietly_wait(cdp, "b.hornsMissed === 1")  # the horn asked for audio and gave up waiting
        assert quiet(cdp, "document.getElementById('count').textContent") == "19"
        assert quiet(cdp, "document.body.dataset.sound") == "blocked"
        assert quiet(cdp, "document.body.dataset.horns === undefined") is True
        enable = page.locator("#enable-sound")
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
    # Every burn-in shift the page takes in turn (app.js SHIFTS, a few pixels each way), not
    # only the one of the minute the test runs in.
    shifts = w.page.evaluate("[[0, 0], [6, 6], [-6, -6], [6, -6], [-6, 6]]")
    for dx, dy in shifts:
        w.page.evaluate("([x, y]) => { document.body.style.setProperty('--shift-x', x + 'px');"
                        " document.body.style.setProperty('--shift-y', y + 'px'); }", [dx, dy])
        for selector in ("#title", "#count", "#dial", "#mute", "#status", "#history"):
            box = w.page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["y"] >= 0, (selector, dx, dy)
            assert box["x"] + box["width"] <= width + 1 and box["y"] + box["height"] <= height + 1, (selector, dx, dy)
    w.page.evaluate("document.body.style.setProperty('--shift-x', '0px'); document.body.style.setProperty('--shift-y', '0px')")
    count, title = w.page.locator("#count").bounding_box(), w.page.locator("#title").bounding_box()
    assert title["y"] + title["height"] <= count["y"]
    boxes = {s: w.page.locator(s).bounding_box() for s in ("#history", "#status", "#enable-sound", "#mute", "#title")}
    for one in boxes:
        for other in boxes:
            a, b = boxes[one], boxes[other]
            apart = (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                     or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
            assert one == other or apart, (one, other)
    w.page.screenshot(path=os.path.join(_artifacts(), "%s-%dx%d.png" % (name, width, height)))
    w.check_clean()
    context.close()


@pytest.fixture
def beat_server(db_path):
    """A server with a one-second heartbeat: a page notices silence in 1.25 s."""
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN, "--ping-interval=1").start()
    yield s
    s.stop()


def test_template_carries_heartbeat_and_night_hours(browser, db_path):
    """The page learns the heartbeat and the night hours from its own HTML, before any message."""
    s = ServerProcess(db_path, "--button=none", "--ping-interval=7", "--night=19:00-07:00").start()
    try:
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(s.url + "/")
        assert float(page.locator("body").get_attribute("data-beat")) == 7
        assert page.locator("body").get_attribute("data-night") == "19:00-07:00"
        context.close()
    finally:
        s.stop()


def test_horn_resumes_audio_the_browser_suspended(watched):
    """When the browser suspended the page's audio after it had played, the next press resumes it and sounds."""
    w = watched.open()
    w.page.evaluate("window.theButton.suspendAudio()")
    expect(w.page.locator("body")).to_have_attribute("data-sound", "blocked")
    w.server.request("POST", "/api/press")
    w.wait_horns(1)
    expect(w.page.locator("body")).to_have_attribute("data-sound", "on")


def test_countdown_page_weighs_under_50_kb(browser, server):
    """Everything the countdown page loads (HTML, script, styles, icons) adds up to under 50 KB."""
    context = browser.new_context()
    w = Watched(context, server)
    sizes = {}

    def on_response(response):
        if response.url.startswith(server.url):
            sizes[response.url] = len(response.body())
    w.page.on("response", on_response)
    w.open(sound=False)
    w.page.wait_for_load_state("networkidle")
    assert any(url.endswith(".js") or ".js?" in url for url in sizes), sizes
    assert sum(sizes.values()) < 50_000, sizes
    context.close()


LONGEST_NOTE = ("Acme Corp renewed for three more years: thank you Dana, Luis and the whole "
                "support team in Lyon!!")


@pytest.mark.parametrize("name, width, height", [("tv", 1920, 1080), ("phone", 390, 844)])
@pytest.mark.parametrize("note, smallest", [("<b>x</b> & Acme Corp", 0.07), (LONGEST_NOTE, 0.04)])
def test_note_shows_big_as_text_with_the_horn(browser, server, name, width, height, note, smallest):
    """A press's note shows big, literally (markup stays text), whole (even at 100 characters) and
    under the count, with the horn, and goes after a few seconds."""
    assert len(note) <= 100
    context = browser.new_context(viewport={"width": width, "height": height})
    w = Watched(context, server)
    w.open()
    assert w.server.request("POST", "/api/press", {"note": note})[0] == 200
    shown = w.page.locator("#note")
    expect(shown).to_be_visible()
    expect(shown).to_have_text(note)
    assert shown.locator("b").count() == 0
    w.wait_horns(1)
    size = float(shown.evaluate("el => getComputedStyle(el).fontSize").rstrip("px"))
    assert size >= smallest * min(width, height)  # readable across a room
    assert shown.evaluate("el => el.scrollHeight <= el.clientHeight + 1")  # nothing cut off
    box = shown.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    count = w.page.locator("#count").bounding_box()
    assert box["y"] >= count["y"] + count["height"] * 0.9  # the count stays readable under it
    expect(shown).to_have_css("opacity", "1")  # its entrance animation over
    w.page.screenshot(path=os.path.join(_artifacts(), "note-%d-%s-%dx%d.png" % (len(note), name, width, height)))
    expect(shown).to_be_hidden(timeout=10000)
    assert w.page.locator("#count").inner_text() == "19"
    w.check_clean()
    context.close()


def test_title_updates_heading_and_document_title(watched):
    """A title set through the API shows in the heading and the tab; an empty one brings the default back."""
    w = watched.open(sound=False)
    assert w.server.request("PUT", "/api/count", {"title": "Sales <i>Q3</i>"})[0] == 200
    expect(w.page.locator("#title")).to_have_text("Sales <i>Q3</i>")
    assert w.page.locator("#title i").count() == 0
    expect(w.page).to_have_title("20 · Sales <i>Q3</i>")
    w.server.request("PUT", "/api/count", {"title": ""})
    expect(w.page.locator("#title")).to_have_text("Countdown to 20")
    expect(w.page).to_have_title("20 · Countdown to 20")


def test_history_link_leads_to_the_history_page(watched):
    """The discreet History link opens /history on the same server."""
    w = watched.open(sound=False)
    with w.page.expect_navigation() as navigation:
        w.page.locator("#history").click()
    assert navigation.value.status == 200
    assert w.page.url == w.server.url + "/history"


def test_ring_shows_no_dot_when_nothing_is_done(browser, server):
    """At 0 % done the ring draws nothing (a round cap would be a dot), with or without script; one press shows it."""
    plain = browser.new_context(java_script_enabled=False)
    page = plain.new_page()
    page.goto(server.url + "/")
    assert page.locator("#progress").evaluate("el => getComputedStyle(el).visibility") == "hidden"
    plain.close()
    context = browser.new_context()
    w = Watched(context, server)
    w.open(sound=False)
    progress = w.page.locator("#progress")
    expect(progress).to_have_css("visibility", "hidden")
    w.server.request("POST", "/api/press")
    expect(progress).to_have_css("visibility", "visible")
    w.server.request("POST", "/api/undo")
    expect(progress).to_have_css("visibility", "hidden")
    w.check_clean()
    context.close()


UTC = datetime.timezone.utc


def night_page(browser, server, at):
    """A page whose clock says ``at`` (UTC, the browser's zone here) while timers run as usual."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, timezone_id="UTC")
    w = Watched(context, server)
    w.page.clock.set_fixed_time(at)
    w.open(sound=False)
    return context, w


def test_night_hours_dim_the_page_and_day_does_not(browser, db_path):
    """During --night hours the page dims with the count still readable; outside them it is not dimmed."""
    s = ServerProcess(db_path, "--button=none", "--ping-interval=1", "--night=19:00-07:00").start()
    try:
        context, w = night_page(browser, s, datetime.datetime(2024, 1, 15, 22, 30, tzinfo=UTC))
        body = w.page.locator("body")
        expect(body).to_have_attribute("data-dim", "on")
        expect(body).to_have_css("filter", "brightness(0.5)")  # its transition over
        expect(w.page.locator("#count")).to_be_visible()
        w.page.screenshot(path=os.path.join(_artifacts(), "night-tv-1920x1080.png"))
        w.page.clock.set_fixed_time(datetime.datetime(2024, 1, 16, 7, 0, tzinfo=UTC))
        expect(body).to_have_attribute("data-dim", "off", timeout=3000)  # at the next heartbeat
        expect(body).to_have_css("filter", "none")
        w.page.clock.set_fixed_time(datetime.datetime(2024, 1, 16, 6, 59, tzinfo=UTC))
        expect(body).to_have_attribute("data-dim", "on", timeout=3000)
        w.page.clock.set_fixed_time(datetime.datetime(2024, 1, 16, 12, 0, tzinfo=UTC))
        expect(body).to_have_attribute("data-dim", "off", timeout=3000)
        # Hours within one day, and the edges of a range that crosses midnight.
        cases = {("09:00-17:00", 8 * 60 + 59): False, ("09:00-17:00", 9 * 60): True,
                 ("09:00-17:00", 17 * 60): False, ("19:00-07:00", 0): True,
                 ("19:00-07:00", 18 * 60 + 59): False, ("", 0): False, ("07:00-07:00", 420): False}
        for (hours, minutes), dim in cases.items():
            assert w.page.evaluate("([h, m]) => window.theButton.isNight(h, m)", [hours, minutes]) is dim, hours
        w.check_clean()
        context.close()
    finally:
        s.stop()


def test_no_night_option_never_dims(browser, beat_server):
    """Without --night the page is never dimmed, even at night."""
    context, w = night_page(browser, beat_server, datetime.datetime(2024, 1, 15, 23, 0, tzinfo=UTC))
    w.wait_until("b.feed.beats >= 1")
    expect(w.page.locator("body")).to_have_attribute("data-dim", "off")
    expect(w.page.locator("body")).to_have_css("filter", "none")
    w.check_clean()
    context.close()


def test_layout_shifts_a_few_pixels_every_few_minutes(browser, beat_server):
    """Every few minutes of the page's clock the whole layout moves by a few pixels (screen burn-in), never far."""
    t0 = datetime.datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    context, w = night_page(browser, beat_server, t0)
    body = w.page.locator("body")
    first = body.get_attribute("data-shift")
    box = w.page.locator("#count").bounding_box()
    w.page.clock.set_fixed_time(t0 + datetime.timedelta(minutes=4))
    expect(body).not_to_have_attribute("data-shift", first, timeout=3000)  # at the next heartbeat
    second = body.get_attribute("data-shift")
    moved = w.page.locator("#count").bounding_box()
    dx, dy = (b - a for a, b in zip(map(int, first.split(",")), map(int, second.split(","))))
    assert (moved["x"] - box["x"], moved["y"] - box["y"]) == pytest.approx((dx, dy), abs=0.5)
    seen = set()
    for minutes in range(0, 60, 4):
        w.page.clock.set_fixed_time(t0 + datetime.timedelta(minutes=minutes))
        seen.add(w.page.evaluate("window.theButton.tvCare(), document.body.dataset.shift"))
    assert len(seen) >= 5
    assert all(abs(int(v)) <= 8 for s in seen for v in s.split(","))
    w.check_clean()
    context.close()


def _artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
