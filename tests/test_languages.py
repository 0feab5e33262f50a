"""Languages (CONTRACT.md, "Languages"): the catalogues, --lang, auto from Accept-Language, the pages in real Chromium."""
import glob
import html
import json
import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ROOT, ServerProcess
from tests.test_server import ServerTestCase
from thebutton.languages import CATALOGUES, LANGUAGES, Words, negotiate, placeholders, webhook_words
from thebutton.store import Change, State
from thebutton.webhooks import sentence

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TEMPLATES = [os.path.join(ROOT, name) for name in ("default.html", "admin.html", "history.html")]
SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "static", "*.js")))
SERVER_CODE = [os.path.join(ROOT, "thebutton", name) for name in ("pages.py", "webhooks.py")]
# A key as the sources write it: a quoted string starting with a catalogue's section (not a file name).
KEY_USE = re.compile(r"""["']((?:page|feed|countdown|admin|history|webhook)\.(?!(?:js|html|css|json|py)["'])[a-z0-9_]+(?:\.[a-z0-9_]+)*)["']""")
# A word each language's admin page has and no other language's does ("Sign in").
SIGN_IN = {"en": "Sign in", "de": "Anmelden", "fr": "Se connecter", "es": "Iniciar sesión", "nl": "Inloggen", "zh": "登录"}


def english():
    return Words("en").words


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- the catalogues -----------------------------------------------------------------------

def test_every_language_has_a_catalogue_and_no_catalogue_is_left_out():
    files = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CATALOGUES, "*.json")))
    assert files == sorted(LANGUAGES)


@pytest.mark.parametrize("code", [c for c in LANGUAGES if c != "en"])
def test_catalogue_has_exactly_englishs_keys_and_placeholders(code):
    """Same keys as en.json, none missing and none extra, each text with the same {placeholders}, none empty."""
    en, words = english(), Words(code).words
    assert sorted(set(en) - set(words)) == [] and sorted(set(words) - set(en)) == []
    for key, text in words.items():
        assert text.strip(), key
        assert placeholders(text) == placeholders(en[key]), (key, text)
        assert "  " not in text, (key, text)


def test_catalogue_keeps_its_language_typography():
    """French: a (narrow) no-break space before ! ? : ; and inside guillemets; Chinese: no space, full-width marks."""
    fr = Words("fr").words
    for key, text in fr.items():
        assert not re.search(r"[^\s\u00a0\u202f][!?;]", text.replace("{", "").replace("}", "")), (key, text)
        assert not re.search(r"[^\u00a0\u202f\d]:(?!//)", text), (key, text)  # "14:30" is a time, not a colon
    assert "«\u00a0{note}\u00a0»" in fr["countdown.last_note"]
    for key, text in Words("zh").words.items():
        assert " " not in text and ":" not in text and "!" not in text, (key, text)


def used_keys():
    used = {}
    for path in TEMPLATES + SCRIPTS + SERVER_CODE:
        for key in KEY_USE.findall(read(path)):
            used.setdefault(key, os.path.relpath(path, ROOT))
    return used


def test_every_key_the_pages_use_is_in_english():
    """Each key written in a template, a page script or the server's pages and webhooks exists (a plural: .one and .other)."""
    en = english()
    used = used_keys()
    assert len(used) > 100, used
    missing = {k: where for k, where in used.items()
               if k not in en and not (k + ".one" in en and k + ".other" in en)}
    assert missing == {}


def test_every_english_key_is_used():
    """No dead words: each key of en.json (a plural by its stem) is used somewhere."""
    used = set(used_keys())
    unused = [k for k in english() if k not in used and re.sub(r"\.(one|other)$", "", k) not in used]
    assert unused == []


def test_no_word_of_the_templates_bypasses_the_catalogue():
    """A template's text and its aria-label/title/placeholder attributes come from t(...): no bare English."""
    for path in TEMPLATES:
        html = read(path)
        html = re.sub(r"<!--.*?-->", "", html, flags=re.S)
        html = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", html, flags=re.S)
        attrs = re.findall(r'\b(?:aria-label|title|placeholder|alt)="([^"]*)"', html)
        assert [a for a in attrs if re.search(r"[A-Za-z]{2}", a)] == [], path
        text = re.sub(r"<[^>]*>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S))
        assert re.findall(r"[A-Za-z]{2,}", text) == [], path


def test_no_word_of_the_scripts_bypasses_the_catalogue():
    """The page scripts write no English literal into the page: textContent, title and messages go through t()."""
    for path in SCRIPTS:
        code = "\n".join(line for line in read(path).splitlines() if not line.strip().startswith("//"))
        bare = re.findall(r'(?:textContent|title|placeholder)\s*=\s*"[^"]*[A-Za-z]{2}[^"]*"', code)
        bare += re.findall(r'\b(?:say|done)\(\s*"[^"]+",\s*"[^"]*[A-Za-z]{2}', code)
        assert bare == [], path


# ---- auto: Accept-Language ----------------------------------------------------------------

@pytest.mark.parametrize("header, code", [
    (None, "en"), ("", "en"), ("de-DE,de;q=0.9,en;q=0.8", "de"), ("de-CH", "de"), ("fr-FR", "fr"),
    ("es-419,es;q=0.9", "es"), ("nl-BE", "nl"), ("zh-CN", "zh"), ("zh-Hans", "zh"), ("zh-TW", "zh"),
    ("ja-JP,ja;q=0.9", "en"), ("ja-JP,fr;q=0.5", "fr"), ("en;q=0.3,de;q=0.7", "de"), ("*", "en"),
    ("de;q=0,fr", "fr"), ("xx-YY;q=garbage,nl", "nl"), ("DE-de", "de"), ("fr;q=0.5,es;q=0.5", "fr"),
])
def test_auto_picks_the_first_accepted_language_we_have(header, code):
    assert negotiate(header) == code


class PagesTest(ServerTestCase):
    def page(self, path, accept=None):
        response = self.fetch(path, headers={"Accept-Language": accept} if accept else {})
        assert response.code == 200
        return response, response.body.decode()

    def html_lang(self, body):
        return re.search(r'<html lang="([^"]+)">', body).group(1)


class EachLang:
    """--lang=CODE: the three pages have <html lang=CODE> and that language's words, never English's."""

    def test_pages_are_in_that_language(self):
        code = self.lang
        t = Words(code)
        for path in ("/", "/admin", "/history"):
            response, body = self.page(path, accept="ja-JP")  # --lang wins over the browser
            assert self.html_lang(body) == code
            assert "Vary" not in response.headers
        _r, admin = self.page("/admin")
        assert SIGN_IN[code] in admin
        assert all(word not in admin for other, word in SIGN_IN.items() if other != code)
        _r, countdown = self.page("/")
        assert t("countdown.cheer") in countdown and t("countdown.sound_on") in countdown
        words = json.loads(html.unescape(re.search(r'data-words="([^"]*)"', countdown).group(1)))
        assert words["feed.offline"] == t("feed.offline") and not any(k.startswith("admin.") for k in words)
        _r, history = self.page("/history")
        assert t("history.per_day") in history


for _code in LANGUAGES:
    globals()["Lang%sTest" % _code.capitalize()] = type("Lang%sTest" % _code.capitalize(), (EachLang, PagesTest),
                                                         {"lang": _code})


class AutoTest(PagesTest):
    def test_auto_answers_each_browser_in_its_language_and_says_it_varies(self):
        for accept, code in (("de-CH,de;q=0.9", "de"), ("zh-TW", "zh"), ("ja-JP", "en"), (None, "en")):
            response, body = self.page("/admin", accept)
            assert self.html_lang(body) == code and SIGN_IN[code] in body
            assert "Accept-Language" in response.headers["Vary"]
        _r, body = self.page("/", "fr-FR")
        assert "Objectif atteint\u202f!" in body and re.search(r"<title>[^<]*Compte à rebours jusqu’à 3", body)


def test_bad_lang_is_one_line_and_exit_2(db_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "websocketserver.py"), "--db=" + db_path,
                             "--button=none", "--lang=klingon"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "--lang must be one of auto, en, de, fr, es, nl, zh" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.exists(db_path)


# ---- webhooks -----------------------------------------------------------------------------

def change(event, count, goal=20, note=None, by=None):
    return Change(event, State(count=count, goal=goal, presses=goal - count), note=note, by=by, source="api")


def test_webhook_sentences_follow_lang():
    de = webhook_words("de")
    assert sentence(change("press", 7), de) == "7 von 20 übrig"
    assert sentence(change("press", 0, note="Acme", by="Ana"), de) == "Ana: Acme! Ziel erreicht! 20 von 20"
    assert sentence(change("undo", 8), de) == "Rückgängig: 8 von 20 übrig"
    assert sentence(change("set", 5), de) == "Gesetzt: 5 von 20 übrig"
    assert sentence(change("round", 20), de) == "Neue Runde: noch 20"
    assert sentence(change("press", 7), webhook_words("fr")) == "encore 7 sur 20"
    assert webhook_words("auto").code == "en" and sentence(change("press", 7), webhook_words("auto")) == "7 left of 20"


# ---- real Chromium ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def auto_server(db_path):
    s = ServerProcess(db_path, "--button=none", "--goal=20").start()
    yield s
    s.stop()


def live(page):
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=15000)


@pytest.mark.parametrize("locale, code, status, number", [
    ("de-DE", "de", "Live", "1.234.567"),
    ("fr-FR", "fr", "En direct", "1\u202f234\u202f567"),
    ("ja-JP", "en", "Live", "1,234,567"),
])
def test_auto_follows_chromiums_locale(browser, auto_server, locale, code, status, number):
    """A real Chromium of that locale gets its language (ja: English), its words written by the scripts, its numbers."""
    context = browser.new_context(locale=locale)
    try:
        page = context.new_page()
        page.goto(auto_server.url + "/")
        live(page)
        assert page.evaluate("document.documentElement.lang") == code
        expect(page.locator("#status-text")).to_have_text(status)
        expect(page.locator("#mute")).to_have_text(Words(code)("countdown.sound_on"))
        assert page.evaluate("ButtonFeed.number(1234567)") == number
        assert page.evaluate("ButtonFeed.t('page.left_of', {goal: 20})") == Words(code)("page.left_of", goal=20)
    finally:
        context.close()


def test_scripts_write_the_disconnected_text_and_durations_in_the_pages_language(browser, auto_server):
    """German Chromium: the disconnected text the feed script writes, a duration and a plural, all German."""
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        page.goto(auto_server.url + "/")
        live(page)
        assert page.evaluate("ButtonFeed.tn('countdown.presses', 1)") == "1 Knopfdruck"
        assert page.evaluate("ButtonFeed.tn('countdown.presses', 2)") == "2 Knopfdrücke"
        assert "Std" in page.evaluate("ButtonFeed.duration(7500)")  # 2 Std., 5 Min.
        auto_server.stop()
        expect(page.locator("#status-text")).to_have_text(re.compile(r"^Verbindung getrennt: neuer Versuch in \d+ s$"),
                                                          timeout=15000)
    finally:
        context.close()


def test_admin_screens_table_says_last_seen_in_the_pages_language(browser, db_path):
    """The admin page's relative time ("vor 5 Minuten") and its buttons come from Intl and the catalogue."""
    from tests.conftest import TOKEN

    server = ServerProcess(db_path, "--button=none", "--goal=20", "--admin-token=" + TOKEN, "--lang=de").start()
    context = browser.new_context(locale="en-US")  # --lang=de wins over the browser
    try:
        tv = context.new_page()
        tv.goto(server.url + "/?screen=Foyer")
        live(tv)
        tv.close()
        page = context.new_page()
        page.clock.install()  # the page's clock, moved on below: no waiting for real minutes
        page.goto(server.url + "/admin")
        live(page)
        page.get_by_label("Admin-Token", exact=True).fill(TOKEN)
        page.get_by_role("button", name="Anmelden").click()
        row = page.locator('#screens-rows tr[data-screen="Foyer"]')
        expect(row.locator(".seen")).to_have_text(re.compile(r"^Zuletzt gesehen vor \d+ Sekunden?$"), timeout=15000)
        expect(row.locator("button.reload")).to_have_text("Neu laden")
        expect(row.locator("button.identify")).to_have_text("Identifizieren")
        expect(page.locator("#state-title")).to_have_text("Countdown bis 20")  # the default heading, in German
        expect(page.locator("#set-title")).to_have_value("Countdown bis 20")
        page.clock.fast_forward("05:00")  # the list is asked for again: five minutes on
        expect(row.locator(".seen")).to_have_text("Zuletzt gesehen vor 5 Minuten", timeout=15000)
    finally:
        context.close()
        server.stop()


def test_the_servers_numbers_are_written_as_chromiums_intl_writes_them(browser):
    """Words.number (the HTML the server sends) matches Intl.NumberFormat in each language."""
    numbers = [0, 7, 999, 1000, 5000, 9999, 12345, 100000, 1000000, -4321]
    page = browser.new_page()
    try:
        for code in LANGUAGES:
            intl = page.evaluate("([lang, ns]) => ns.map(n => new Intl.NumberFormat(lang).format(n))", [code, numbers])
            assert [Words(code).number(n) for n in numbers] == intl, code
    finally:
        page.close()


def test_a_big_goal_reads_the_same_before_and_after_the_page_is_live(browser, db_path):
    """With a goal of 5,000 the German page says 5.000 in the HTML it is sent and once its script runs."""
    server = ServerProcess(db_path, "--button=none", "--goal=5000", "--lang=de").start()
    try:
        sent = __import__("urllib.request").request.urlopen(server.url + "/", timeout=10).read().decode()
        assert "Countdown bis 5.000" in sent and '<span id="goal">5.000</span>' in sent
        assert ">5.000</output>" in sent
        page = browser.new_page()
        page.goto(server.url + "/")
        live(page)
        expect(page.locator("#title")).to_have_text("Countdown bis 5.000")
        expect(page.locator("#count")).to_have_text("5.000")
        expect(page.locator("#left")).to_have_text("von 5.000 übrig")
        assert page.title().startswith("5.000 · ")
        page.close()
    finally:
        server.stop()


def test_history_names_each_source_in_the_pages_language(browser, db_path):
    """A press's source in the history table is the page's word (Tastatur, Knopf), a device by its name."""
    from Repository import Repository

    with Repository(db_path, goal=20) as store:
        store.press(source="gpio")
        store.press(source="keyboard")
        store.press(source="mqtt")
        store.press(source="tomorrow")  # a source this page has no word for: shown as itself
    server = ServerProcess(db_path, "--button=none", "--lang=de").start()
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(server.url + "/history")
        sources = page.locator("#latest-rows td.source")
        expect(sources).to_have_text(["tomorrow", "MQTT", "Tastatur", "Knopf"])
    finally:
        context.close()
        server.stop()


@pytest.mark.parametrize("code", LANGUAGES)
def test_countdown_page_screenshot_at_tv_size(browser, db_path, tmp_path, code):
    """Each language's countdown page at 1920x1080: a picture written, nothing wider than the screen."""
    server = ServerProcess(db_path, "--button=none", "--goal=20", "--lang=" + code).start()
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        live(page)
        assert page.evaluate("document.documentElement.lang") == code
        wide = page.evaluate("""() => [...document.querySelectorAll('#title, #left, #status, #history, .sound button')]
            .filter(el => !el.hidden && el.offsetParent !== null)
            .filter(el => { const r = el.getBoundingClientRect();
                            return r.left < 0 || r.right > innerWidth || r.bottom > innerHeight || el.scrollWidth > el.clientWidth + 1; })
            .map(el => el.id || el.className)""")
        assert wide == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 1920
        path = tmp_path / ("countdown-%s-1920x1080.png" % code)
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000
        shots = os.environ.get("LANG_SHOTS")  # a folder to keep them in, to look at
        if shots:
            os.makedirs(shots, exist_ok=True)
            page.screenshot(path=os.path.join(shots, path.name))
    finally:
        context.close()
        server.stop()
