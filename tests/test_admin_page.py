"""The admin page in a real browser: Debian's Chromium driven by Playwright, against the real server."""
import http.server
import json
import os
import re
import threading

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT, TOKEN, ServerProcess, free_port

ARTIFACTS = os.path.join(ROOT, "artifacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN).start()
    yield s
    s.stop()


class Tab:
    """A page of our server with every console error, page error and request it made recorded."""

    def __init__(self, context, server):
        self.server = server
        self.page = context.new_page()
        self.errors = []
        self.requests = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))

    def open(self, path):
        self.page.goto(self.server.url + path)
        expect(self.page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)
        return self

    def check_clean(self, expected_errors=None):
        """No console errors (but those a test causes on purpose), and nothing fetched from anywhere but our server."""
        unexpected = [e for e in self.errors if not (expected_errors and re.search(expected_errors, e))]
        assert unexpected == []
        own = re.compile(r"^(http|ws)://127\.0\.0\.1:%d/" % self.server.port)
        assert [u for u in self.requests if not own.match(u) and not u.startswith("data:")] == []


@pytest.fixture
def context(browser):
    c = browser.new_context(viewport={"width": 1280, "height": 800})
    yield c
    c.close()


@pytest.fixture
def tab(context, server):
    t = Tab(context, server)
    yield t
    t.check_clean(getattr(t, "expected_errors", None))


def sign_in(tab, token=TOKEN):
    """Open /admin and sign in with ``token``."""
    page = tab.open("/admin").page
    page.get_by_label("Admin token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    return page


def signed_in(tab):
    page = sign_in(tab)
    expect(page.get_by_role("button", name="Press", exact=True)).to_be_visible()
    return page


def test_wrong_token_says_so_and_shows_no_controls(tab):
    """A wrong token: "Wrong token" next to the field, and no Press, Undo or Save."""
    # The browser logs the 403 of /api/auth as a failed resource load: expected here.
    tab.expected_errors = r"status of 403"
    page = sign_in(tab, "not-the-token")
    error = page.locator("#token-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Wrong token")
    for name in ("Press", "Undo", "Save"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    expect(page.get_by_label("Count", exact=True)).to_be_hidden()
    assert page.get_by_label("Admin token", exact=True).input_value() == ""


def test_right_token_shows_the_controls_and_the_live_state(tab):
    """The right token: Press, Undo, Count, Goal, Title, Save, the note field and the live count."""
    page = signed_in(tab)
    for name in ("Press", "Undo", "Save"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    for label in ("Count", "Goal", "Title", "Note for the next press"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#count")).to_have_text("20")
    expect(page.get_by_label("Count", exact=True)).to_have_value("20")
    expect(page.get_by_label("Goal", exact=True)).to_have_value("20")
    tab.server.request("POST", "/api/press")  # from elsewhere: the page follows the feed
    expect(page.locator("#count")).to_have_text("19")
    expect(page.locator("#latest-rows tr")).to_have_count(1)


def test_press_with_a_note_counts_down_and_lists_the_note_as_text(tab):
    """Press with a note: the count goes down and the latest presses show the note literally."""
    page = signed_in(tab)
    page.get_by_label("Note for the next press", exact=True).fill("<b>Acme</b> Corp")
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#count")).to_have_text("19")
    first = page.locator("#latest-rows tr").first
    expect(first.locator("td.note")).to_have_text("<b>Acme</b> Corp")
    assert first.locator("b").count() == 0
    expect(first.locator("td.source")).to_have_text("API")
    expect(page.get_by_label("Note for the next press", exact=True)).to_have_value("")
    status, state = tab.server.request("GET", "/api/count")
    assert state["count"] == 19
    status, history = tab.server.request("GET", "/api/history")
    assert history["presses"][0]["note"] == "<b>Acme</b> Corp"


def test_undo_reverts_and_nothing_to_undo_is_said_next_to_the_button(tab):
    """Undo puts the count back and marks the press undone; with nothing left, the 409 is shown by Undo."""
    tab.expected_errors = r"status of 409"
    page = signed_in(tab)
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#count")).to_have_text("19")
    page.get_by_role("button", name="Undo", exact=True).click()
    expect(page.locator("#count")).to_have_text("20")
    expect(page.locator("#latest-rows tr.undone")).to_have_count(1)
    page.get_by_role("button", name="Undo", exact=True).click()
    expect(page.locator("#undo-error")).to_contain_text("Nothing to undo")
    assert tab.server.request("GET", "/api/count")[1]["count"] == 20


def test_save_sets_count_goal_and_title_everywhere(tab, context):
    """Save stores count, goal and title; the countdown page shows the new title and count."""
    page = signed_in(tab)
    countdown = Tab(context, tab.server).open("/").page
    page.get_by_label("Goal", exact=True).fill("50")
    page.get_by_label("Count", exact=True).fill("42")
    page.get_by_label("Title", exact=True).fill("Deals this month")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#save-done")).to_be_visible()
    expect(page.locator("#count")).to_have_text("42")
    expect(page.locator("#goal")).to_have_text("50")
    expect(countdown.locator("#title")).to_have_text("Deals this month")
    expect(countdown.locator("#count")).to_have_text("42")
    state = tab.server.request("GET", "/api/count")[1]
    assert (state["count"], state["goal"], state["title"]) == (42, 50, "Deals this month")


def test_untouched_fields_are_not_sent(tab):
    """Saving only a new count leaves the default heading a default: it still follows the goal."""
    page = signed_in(tab)
    page.get_by_label("Count", exact=True).fill("7")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#count")).to_have_text("7")
    tab.server.request("PUT", "/api/count", {"goal": 30})
    expect(page.get_by_label("Title", exact=True)).to_have_value("Countdown to 30")


def test_bad_value_shows_the_api_error_next_to_the_field(tab):
    """Count above the goal: the API's words appear next to Count, and nothing changes."""
    tab.expected_errors = r"status of 400"
    page = signed_in(tab)
    page.get_by_label("Count", exact=True).fill("25")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#set-count-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("more than the goal")
    expect(page.get_by_label("Count", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#save-error")).to_be_hidden()
    assert tab.server.request("GET", "/api/count")[1]["count"] == 20
    page.get_by_label("Title", exact=True).fill("x" * 80)
    page.get_by_label("Title", exact=True).evaluate("e => { e.removeAttribute('maxlength'); e.value += 'yy'; }")
    page.get_by_label("Title", exact=True).dispatch_event("input")
    page.get_by_label("Count", exact=True).fill("3")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#set-title-error")).to_contain_text("at most 80 characters")
    assert tab.server.request("GET", "/api/count")[1]["count"] == 20


def test_token_stays_out_of_urls_storage_and_the_log(tab):
    """After sign-in and writes the token is in no URL, no storage, no cookie, no field and no server log line."""
    page = signed_in(tab)
    page.get_by_label("Note for the next press", exact=True).fill("secret check")
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#count")).to_have_text("19")
    page.get_by_role("button", name="Undo", exact=True).click()
    expect(page.locator("#count")).to_have_text("20")
    assert TOKEN not in page.url
    assert all(TOKEN not in url for url in tab.requests)
    stored = page.evaluate("""() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),
                                                    document.cookie, history.state, location.href])""")
    assert TOKEN not in stored
    assert page.context.cookies() == []
    assert TOKEN not in page.content()
    assert page.evaluate("() => [...document.querySelectorAll('input')].map(i => i.value).join(' ')").find(TOKEN) < 0
    field = page.get_by_label("Admin token", exact=True)
    assert field.get_attribute("type") == "password"
    assert field.get_attribute("autocomplete") == "off"
    assert field.get_attribute("name") is None  # a form sent without script carries no token
    log = tab.server.output()
    assert "POST /api/press" in log  # the access log is on, and still has no token
    assert TOKEN not in log


def test_a_page_from_another_origin_cannot_write(tab, context):
    """An evil page on another port tries fetch and form POSTs, with and without the token: the count stays."""
    page = signed_in(tab)  # the admin is signed in, in the same browser, while the evil page runs
    evil = EvilSite(tab.server.url).start()
    try:
        other = context.new_page()
        other.goto(evil.url)
        other.wait_for_function("() => window.attempts && window.attempts.done", timeout=15000)
        results = other.evaluate("() => window.attempts")
        # The browser let the simple requests through (no preflight) and the server refused
        # them; the one with an Authorization header died at the CORS preflight.
        assert results["plain"] in (401, 0), results
        assert results["withToken"] == "blocked", results
        assert results["put"] == "blocked", results
        assert results["formsLoaded"] == 2, results
    finally:
        evil.stop()
    # The two forms and the plain fetch reached the server, which refused each: no token.
    assert len(re.findall(r"\b401 POST /api/press\b", tab.server.output())) == 3
    state = tab.server.request("GET", "/api/count")[1]
    assert state["count"] == 20 and state["presses"] == 0
    status, history = tab.server.request("GET", "/api/history")
    assert history["presses"] == []
    expect(page.locator("#count")).to_have_text("20")


def test_the_page_has_the_strict_csp_and_cannot_be_framed(server):
    """GET /admin: 200 HTML with the countdown page's CSP (no inline script or style), no-cache and DENY framing."""
    import urllib.request
    with urllib.request.urlopen(server.url + "/admin") as r:
        html = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe-inline" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html
    assert 'for="token">Admin token<' in html


@pytest.mark.parametrize("name, width, height", [("laptop", 1366, 768), ("tv", 1920, 1080), ("phone", 390, 844)])
def test_admin_fits_laptop_tv_and_phone(browser, server, name, width, height):
    """At laptop, TV and phone sizes every control is on screen horizontally and nothing spills sideways."""
    server.request("POST", "/api/press", {"note": "Acme Corp"})
    context = browser.new_context(viewport={"width": width, "height": height})
    t = Tab(context, server)
    page = signed_in(t)
    expect(page.locator("#latest-rows tr")).to_have_count(1)
    for selector in ("#count", "#note", "#press", "#undo", "#set-count", "#set-goal", "#set-title", "#save", "#latest"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, selector
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "admin-%s-%dx%d.png" % (name, width, height)), full_page=True)
    t.check_clean()
    context.close()


EVIL_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cute cats</title></head>
<body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="f1" method="POST" action="%(target)s/api/press" target="sink1"></form>
<form id="f2" method="POST" action="%(target)s/api/press" target="sink2" enctype="text/plain">
  <input name='{"note": "evil", "x": "' value='"}'>
</form>
<script>
window.attempts = {formsLoaded: 0};
const target = "%(target)s";
function status(p) { return p.then(r => r.status, () => "blocked"); }
let loaded = 0;
const formsDone = new Promise(resolve => {
  for (const name of ["sink1", "sink2"]) {
    document.querySelector("iframe[name=" + name + "]").addEventListener("load", () => {
      window.attempts.formsLoaded += 1;
      if (window.attempts.formsLoaded === 2) resolve();
    });
  }
});
document.getElementById("f1").submit();
document.getElementById("f2").submit();
Promise.all([
  status(fetch(target + "/api/press", {method: "POST", mode: "no-cors", credentials: "include",
                                       body: '{"note": "evil"}'})).then(s => { window.attempts.plain = s; }),
  status(fetch(target + "/api/press", {method: "POST", headers: {"Authorization": "Bearer %(token)s",
         "Content-Type": "application/json"}, body: "{}"})).then(s => { window.attempts.withToken = s; }),
  status(fetch(target + "/api/count", {method: "PUT", credentials: "include",
         headers: {"Content-Type": "application/json"}, body: '{"count": 1}'})).then(s => { window.attempts.put = s; }),
  formsDone,
]).then(() => { window.attempts.done = true; });
</script>
</body></html>
"""


class EvilSite:
    """Another origin (another port) serving a page that tries to write to our server."""

    def __init__(self, target):
        self.port = free_port()
        page = (EVIL_PAGE % {"target": target, "token": TOKEN}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_fields_carry_the_servers_limits(tab):
    """The note, title and goal fields take their limits from the server (thebutton/validation.py), as does data-limits."""
    from thebutton.validation import page_limits

    limits = page_limits()
    page = tab.open("/admin").page
    assert json.loads(page.locator("body").get_attribute("data-limits")) == limits
    # maxlength counts UTF-16 units: twice the limit, so that a field of emoji is not cut at half.
    assert page.locator("#note").get_attribute("maxlength") == str(2 * limits["note"])
    assert page.locator("#set-title").get_attribute("maxlength") == str(2 * limits["title"])
    assert page.locator("#set-goal").get_attribute("max") == str(limits["goal"])


def test_the_note_field_counts_characters_as_the_api_does(tab):
    """100 emoji are a note of 100 characters on the page as in the API (maxlength alone allowed 50);
    101 characters are refused by the page in words, and nothing is pressed."""
    tab.expected_errors = r"status of 400"
    page = signed_in(tab)
    note = page.get_by_label("Note for the next press", exact=True)
    note.fill("\U0001F389" * 100)
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#count")).to_have_text("19")
    stored = tab.server.request("GET", "/api/history?limit=1")[1]["presses"][0]["note"]
    assert stored == "\U0001F389" * 100
    note.fill("\U0001F389" + "x" * 100)
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#note-error")).to_contain_text("at most 100 characters")
    assert tab.server.request("GET", "/api/count")[1]["count"] == 19


def test_who_field_names_the_press_suggests_recent_names_and_stays_for_the_tab(tab):
    """"Who" goes with the press as "by"; it suggests the names of the last 30 days, stays for the next press
    and after a reload of the tab; a name over 40 characters is refused by the page, nothing pressed."""
    tab.server.request("POST", "/api/press", {"by": "Ben"})
    tab.server.request("POST", "/api/press", {"by": "ben"})  # the latest spelling is the one suggested
    page = signed_in(tab)
    expect(page.locator("#who-names option")).to_have_count(1)  # the page's CSP allows no eval: no wait_for_function
    assert page.locator("#who-names option").evaluate_all("os => os.map(o => o.value)") == ["ben"]
    who = page.get_by_label("Who", exact=True)
    who.fill("Ana")
    page.get_by_label("Note for the next press", exact=True).fill("Acme Corp")
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#count")).to_have_text("17")
    newest = tab.server.request("GET", "/api/history?limit=1")[1]["presses"][0]
    assert (newest["by"], newest["note"]) == ("Ana", "Acme Corp")
    expect(page.locator("#latest-rows tr").first.locator("td.by")).to_have_text("Ana")
    assert who.input_value() == "Ana"
    page.reload()
    assert page.get_by_label("Who", exact=True).input_value() == "Ana"
    page = signed_in(tab)
    page.get_by_label("Who", exact=True).fill("x" * 41)
    page.get_by_role("button", name="Press", exact=True).click()
    expect(page.locator("#who-error")).to_contain_text("at most 40 characters")
    assert tab.server.request("GET", "/api/count")[1]["count"] == 17
