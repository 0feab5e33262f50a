"""The pages' and webhooks' words: one message catalogue per language, thebutton/i18n/<code>.json.

English (en.json) is the reference: every other catalogue has exactly its keys and the same
{placeholders} (tests/test_languages.py checks). A key ending in ".one" or ".other" is one
form of a sentence with a number in it; the page picks the form with Intl.PluralRules.

``--lang=auto`` answers each browser in the first language of its Accept-Language header
that we have (de-CH is de; zh-CN, zh-Hans and zh-TW are zh), else English.
"""
from __future__ import annotations

import functools
import json
import os
import re
from typing import Dict, List, Optional, Tuple

LANGUAGES = ("en", "de", "fr", "es", "nl", "zh")  # add a code here and its catalogue in i18n/
CHOICES = ("auto",) + LANGUAGES
DEFAULT = "en"
CATALOGUES = os.path.join(os.path.dirname(__file__), "i18n")

# The keys each page's scripts get besides page.* and feed.* (the countdown page stays light).
PAGE_WORDS = {"default.html": ("countdown.",), "admin.html": ("admin.",), "history.html": ("history.",)}

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# A language range of Accept-Language and its weight: "de-CH", "de;q=0.9", "*;q=0.1".
RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+)\s*)?$")


@functools.cache
def catalogue(code: str, folder: str = CATALOGUES) -> Dict[str, str]:
    """The words of one language, key -> text; read once."""
    with open(os.path.join(folder, code + ".json"), encoding="utf-8") as f:
        words = json.load(f)
    return {key: value for key, value in words.items() if not key.startswith("_")}


# How each language groups the digits of a whole number, as CLDR (and so every browser's Intl)
# has it: the separator, and the fewest digits the first group must have before grouping
# starts (Spanish writes 5000 but 12.345). Checked against Chromium's Intl by a test.
GROUPING: Dict[str, Tuple[str, int]] = {
    "en": (",", 1), "de": (".", 1), "fr": ("\u202f", 1), "es": (".", 2), "nl": (".", 1), "zh": (",", 1),
}


class Words:
    """One language's catalogue, and the way the server fills its {placeholders}."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.words = catalogue(code)

    def __call__(self, key: str, **values: object) -> str:
        """The text of ``key`` with each {name} replaced by values[name] (a whole number written
        the language's way); KeyError for an unknown key."""
        text = self.words[key]
        return PLACEHOLDER.sub(lambda m: self.value(values[m.group(1)]) if m.group(1) in values else m.group(0),
                               text)

    def value(self, value: object) -> str:
        return self.number(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)

    def number(self, n: int) -> str:
        """A whole number as the browser's Intl.NumberFormat writes it in this language, so that the
        page the server sends reads the same before and after its script takes over (5.000 in German)."""
        sep, least = GROUPING[self.code]
        if len(str(abs(n))) < 3 + least:
            return str(n)
        return f"{n:,}".replace(",", sep)

    def client(self, template: str) -> Dict[str, str]:
        """The words one page's scripts use: the shared ones (page., feed.) and that page's own."""
        prefixes = ("page.", "feed.") + PAGE_WORDS.get(template, ())
        return {key: text for key, text in self.words.items() if key.startswith(prefixes)}


def accepted(header: Optional[str]) -> List[Tuple[str, float]]:
    """The language ranges of an Accept-Language header, best first (equal weights keep their order)."""
    ranges = []
    for i, part in enumerate((header or "").split(",")[:40]):
        m = RANGE.match(part)
        if not m:
            continue
        try:
            q = float(m.group(2)) if m.group(2) is not None else 1.0
        except ValueError:
            continue
        if 0 < q <= 1:
            ranges.append((i, m.group(1).lower(), q))
    ranges.sort(key=lambda r: (-r[2], r[0]))
    return [(tag, q) for _i, tag, q in ranges]


def negotiate(header: Optional[str]) -> str:
    """The language to answer a browser in: its first accepted one that we have, else English."""
    for tag, _q in accepted(header):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary  # de-CH -> de; zh-CN, zh-Hans, zh-TW -> zh (the catalogue is Simplified)
    return DEFAULT


def choose(lang: str, header: Optional[str]) -> str:
    """The language of one page: --lang itself, or with auto the browser's."""
    return negotiate(header) if lang == "auto" else lang


def webhook_words(lang: str) -> Words:
    """The webhooks' language: --lang, and English for auto (no browser asks)."""
    return Words(DEFAULT if lang == "auto" else lang)


def placeholders(text: str) -> List[str]:
    return sorted(PLACEHOLDER.findall(text))


def check(lang: str) -> Optional[str]:
    """What is wrong with a --lang value, in one line, or None."""
    if lang not in CHOICES:
        return f"--lang must be one of {', '.join(CHOICES)}, not {lang!r}"
    return None

