"""Text people type: one rule set (thebutton/validation.py) for notes, titles and names, through the API too."""
import pytest

from tests.test_server import ServerTestCase
from thebutton.store import InvalidValue
from thebutton.validation import MAX_NAME, check_name, check_note, check_text, check_title

A = "\u0301"  # a combining acute accent

FINE = [
    "Acme Corp", "  padded  ", "שלום עולם", "مرحبا بالعالم", "e" + A * 4, "Ca" + A + "fe" + A,
    "\U0001F468\u200D\U0001F469\u200D\U0001F467",  # a family: emoji joined by ZWJ
    "\U0001F44D\U0001F3FD", "\U0001F1E9\U0001F1EA",  # a skin tone, a flag
    "soft\u00adhyphen", "zero\u200cwidth non-joiner", "\u200fRTL mark inside", "नमस्ते", "ひらがな",
]
BLANK = ["", "   ", "\u200b", "\u200b\u200b\u200d", "\u2060\ufeff", "\u3164\u3164", "\u115f\u1160", "\u2800",
         "\u00a0\u3000", A * 3, "\u200e\u200f", "\u034f"]
REFUSED = [
    ("e" + A * 5, "accents"), ("x" + "\u0489" * 5, "accents"), ("e" + (A + "\u200d") * 5, "accents"), ("Zalgo" + A * 90, "accents"),
    ("abc\u202edcba", "control"), ("a\u2066b\u2069", "control"), ("line\u2028break", "control"),
    ("para\u2029graph", "control"), ("tab\there", "control"), ("nul\x00", "control"), ("\ud800", "control"),
]


@pytest.mark.parametrize("text", FINE)
def test_text_that_is_fine(text):
    assert check_text(text, "note", 100) == text.strip()


@pytest.mark.parametrize("text", BLANK)
def test_text_with_nothing_visible_is_empty(text):
    """Only spaces, zero-width or other invisible characters: the same as an empty text."""
    assert check_note(text) is None and check_title(text) is None
    with pytest.raises(InvalidValue, match="visible"):
        check_name(text, "by")


@pytest.mark.parametrize("text,words", REFUSED)
def test_text_that_is_refused(text, words):
    with pytest.raises(InvalidValue, match=words):
        check_text(text, "note", 100)


def test_lengths_are_code_points():
    assert check_note("\U0001F389" * 100) == "\U0001F389" * 100  # 200 UTF-16 units, 100 characters
    with pytest.raises(InvalidValue, match="at most 100"):
        check_note("\U0001F389" * 101)
    assert check_name("\U0001F468\u200D\U0001F469" + "x" * (MAX_NAME - 3), "by")
    with pytest.raises(InvalidValue, match="at most 40"):
        check_name("x" * 41, "by")


class TextThroughTheApiTest(ServerTestCase):
    def test_a_blank_note_is_no_note(self):
        """A note of zero-width characters only is stored as no note: no TV shows a blank note band."""
        code, state = self.api("POST", "/api/press", {"note": "\u200b\u200d\u2060"})
        assert code == 200
        assert self.repository.history(limit=1)[0]["note"] is None

    def test_stacked_marks_and_overrides_are_400_and_change_nothing(self):
        for note in ("e" + A * 99, "evil\u202eexe.txt", "a\u2028b"):
            code, body = self.api("POST", "/api/press", {"note": note})
            assert code == 400 and body["error"], note
        for title in ("T" + A * 5, "\u2066Title"):
            code, body = self.api("PUT", "/api/count", {"title": title})
            assert code == 400 and body["error"], title
        assert self.repository.state().presses == 0 and self.repository.state().title is None

    def test_a_title_of_emoji_counts_characters(self):
        code, state = self.api("PUT", "/api/count", {"title": "\U0001F3C6" * 80})
        assert code == 200 and state["title"] == "\U0001F3C6" * 80
        code, _ = self.api("PUT", "/api/count", {"title": "\U0001F3C6" * 81})
        assert code == 400
