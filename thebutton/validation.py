"""Every limit and every check of what a caller may ask for, in one place.

The stores call the checks, and nothing else does: the API and the MQTT bridge hand what
they were sent to the store as it is. The pages get the limits from the server
(``page_limits``), so that no copy of a number lives in a script.
"""
from __future__ import annotations

import datetime
import re
import unicodedata
from typing import Any, Dict, Optional

from thebutton.store import InvalidValue

MAX_GOAL = 1_000_000
MAX_TITLE = 80  # characters, after trimming
MAX_NOTE = 100  # characters, after trimming
MAX_HISTORY = 1000  # presses in one read of history (GET /api/history?limit=, and each store read)
HISTORY_LIMIT = 50  # presses when no limit is given
CSV_LIMIT = 1000  # presses in an export when no limit is given
MAX_CSV_LIMIT = 100_000
MAX_ROUNDS = 1000  # rounds() gives the latest this many
# How far ahead of the clock a round may have started and still hold the period start that
# the running clock passes (servers sharing a Redis have clocks a little apart); further
# ahead, it was stamped by a clock that was set back since.
FUTURE_SLACK = datetime.timedelta(minutes=5)
MIN_TOKEN = 16  # characters of an admin token below which the start warns
STORE_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")  # a Redis key prefix, also part of the outbox's file name
NIGHT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")  # "19:00-07:00"


def page_limits() -> Dict[str, Any]:
    """The limits a page checks before it asks (the server checks again): for data-limits."""
    return {"note": MAX_NOTE, "title": MAX_TITLE, "name": MAX_NAME, "goal": MAX_GOAL, "history": MAX_HISTORY,
            "marks": MAX_MARKS_IN_A_ROW}


def now_iso() -> str:
    """The current time as ISO-8601 with its UTC offset, to the millisecond."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def check_goal(goal: object) -> int:
    if not isinstance(goal, int) or isinstance(goal, bool) or not 1 <= goal <= MAX_GOAL:
        raise InvalidValue(f"goal must be a whole number from 1 to {MAX_GOAL:,}")
    return goal


def check_count(count: object, goal: Optional[int] = None) -> int:
    """A count of 0 or more, and at most ``goal`` when one is given."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidValue("count must be a whole number of 0 or more")
    if goal is not None and count > goal:
        raise InvalidValue(f"count must not be more than the goal ({goal})")
    return count


# Format characters that change how the text around them shows (direction overrides and
# isolates, line and paragraph separators); the joiners emoji and scripts need stay allowed.
LAYOUT_CONTROLS = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that draw nothing: Hangul fillers, the braille blank, Khmer's
# inherent vowels, the combining grapheme joiner. Alone they would show a blank note on every TV.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f")
MAX_MARKS_IN_A_ROW = 4  # combining marks on one letter; more is "Zalgo" text that spills over the line
MAX_NAME = 40  # characters of a name: who pressed, a device, a screen


def _has_control(text: str) -> bool:
    return any(ch in LAYOUT_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text)


def _visible(ch: str) -> bool:
    # Whitespace, format characters (zero-width space and joiners, soft hyphen, marks of
    # direction), combining marks alone and the blank-looking letters draw nothing.
    return not ch.isspace() and ch not in BLANK_LOOKING and unicodedata.category(ch) not in ("Cf", "Mn", "Me", "Zs")


def _marks_in_a_row(text: str) -> int:
    most = run = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Mn", "Me"):
            run += 1
            most = max(most, run)
        elif category != "Cf":  # a joiner between marks still stacks them on the same letter
            run = 0
    return most


def check_text(text: object, what: str, most: int) -> Optional[str]:
    """Text a person typed (a note, a title, a name): the one rule set of every such field.

    Trimmed; at most ``most`` characters, counted as code points (as the pages count them);
    no control characters, line or paragraph separators or direction overrides and isolates;
    at most MAX_MARKS_IN_A_ROW combining marks in a row. A text with no visible character
    (spaces, zero-width characters and the like only) is taken as an empty one: None.
    Right-to-left text, joiners, soft hyphens and emoji sequences are fine.
    """
    if not isinstance(text, str):
        raise InvalidValue(f"{what} must be a string")
    text = text.strip()
    if not any(_visible(ch) for ch in text):
        return None
    if len(text) > most:
        raise InvalidValue(f"{what} must be at most {most} characters")
    if _has_control(text):
        raise InvalidValue(f"{what} must not contain control characters, line breaks or direction overrides")
    if _marks_in_a_row(text) > MAX_MARKS_IN_A_ROW:
        raise InvalidValue(f"{what} must not stack more than {MAX_MARKS_IN_A_ROW} accents or marks on one letter")
    return text


def check_name(name: object, what: str) -> str:
    """A name (who pressed, a device, a screen): 1-40 characters under the text rules; empty or blank is refused."""
    checked = check_text(name, what, MAX_NAME)
    if checked is None:
        raise InvalidValue(f"{what} must have at least one visible character (at most {MAX_NAME})")
    return checked


def check_by(by: object) -> Optional[str]:
    """Who made a press: None, or a name of 1-40 characters under the text rules (a blank one is refused)."""
    return None if by is None else check_name(by, "by")


def check_title(title: object) -> Optional[str]:
    """A title of 1-80 characters after trimming; "" means the default heading (None)."""
    return check_text(title, "title", MAX_TITLE)


def check_note(note: object) -> Optional[str]:
    """A note of at most 100 characters after trimming, no control characters; None or "" = no note."""
    return None if note is None else check_text(note, "note", MAX_NOTE)


MAX_IDEM = 100  # characters of a device press's id (or Idempotency-Key)
PRESSED_AT_WINDOW = datetime.timedelta(hours=24)  # how long ago a device's press may say it was made


def check_device_name(name: object) -> str:
    """A device's name: 1-40 characters under the text rules, and not dots alone (the admin page's
    DELETE /api/devices/.. would be read by every browser as a path that goes up)."""
    checked = check_name(name, "name")
    if set(checked) == {"."}:
        raise InvalidValue("name must not be dots alone")
    return checked


def check_kind(kind: object) -> str:
    from thebutton.store import DEVICE_KINDS

    if kind not in DEVICE_KINDS:
        raise InvalidValue(f"kind must be one of {', '.join(DEVICE_KINDS)}")
    return str(kind)


def check_idem(idem: object) -> Optional[str]:
    """A device press's id: None, or 1-100 characters with no control characters (not trimmed: it is compared)."""
    if idem is None:
        return None
    if not isinstance(idem, str) or not 1 <= len(idem) <= MAX_IDEM:
        raise InvalidValue(f"id must be a string of 1 to {MAX_IDEM} characters")
    if _has_control(idem):
        raise InvalidValue("id must not contain control characters")
    return idem


def check_pressed_at(at: object, now: str) -> Optional[str]:
    """When a device's press was really made: None, or an ISO-8601 time with its offset, or Unix
    seconds (a number, or its digits as a query parameter gives them); at most 24 h before
    ``now`` and not after it (give or take FUTURE_SLACK). Returned as UTC to the millisecond."""
    if at is None:
        return None
    current = parse_time(now, "now")
    if isinstance(at, str) and re.fullmatch(r"\d{1,12}(\.\d{1,20})?", at.strip()):
        at = float(at)
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        try:
            when = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidValue("at must be an ISO-8601 time with its UTC offset or Unix seconds") from None
    elif isinstance(at, str):
        try:
            when = parse_time(at.strip(), "at")
        except InvalidValue:
            raise InvalidValue("at must be an ISO-8601 time with its UTC offset or Unix seconds") from None
    else:
        raise InvalidValue("at must be an ISO-8601 time with its UTC offset or Unix seconds")
    if when > current + FUTURE_SLACK:
        raise InvalidValue("at must not be in the future")
    if when < current - PRESSED_AT_WINDOW:
        raise InvalidValue("at must be within the last 24 hours")
    when = min(when, current).astimezone(datetime.timezone.utc)
    return when.replace(microsecond=when.microsecond // 1000 * 1000).isoformat(timespec="milliseconds")


def clean_note(text: object) -> Optional[str]:
    """Any text (a CRM's deal title) made into a note that passes check_note, or None: control
    and layout characters become spaces, runs of marks are cut, and it is shortened to MAX_NOTE."""
    if not isinstance(text, str):
        return None
    chars = []
    run = 0
    for ch in text:
        if ch in LAYOUT_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Co"):
            ch, run = " ", 0
        elif unicodedata.category(ch) in ("Mn", "Me"):
            run += 1
            if run > MAX_MARKS_IN_A_ROW:
                continue
        elif unicodedata.category(ch) != "Cf":
            run = 0
        chars.append(ch)
    cleaned = " ".join("".join(chars).split())
    if len(cleaned) > MAX_NOTE:
        cleaned = cleaned[:MAX_NOTE - 1].rstrip() + "\u2026"
    try:
        return check_note(cleaned)
    except InvalidValue:
        return None


def parse_time(text: str, what: str) -> datetime.datetime:
    """An ISO-8601 time with its UTC offset, as an aware datetime; InvalidValue otherwise."""
    try:
        # Python 3.9's fromisoformat does not read a trailing "Z".
        parsed = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except (TypeError, ValueError, AttributeError):
        raise InvalidValue(f"{what} must be an ISO-8601 time with its UTC offset") from None
    if parsed.utcoffset() is None:
        raise InvalidValue(f"{what} must be an ISO-8601 time with its UTC offset")
    return parsed


LEADERBOARD_PERIODS = ("round", "month", "all")


def check_period(period: object) -> str:
    """A leaderboard's period: round (the current one), month (this calendar month, local time) or all."""
    if period not in LEADERBOARD_PERIODS:
        raise InvalidValue(f"period must be one of {', '.join(LEADERBOARD_PERIODS)}")
    return str(period)


def check_page(limit: object, before: object) -> None:
    """A history page: ``limit`` from 1 to MAX_HISTORY, ``before`` None or a press id (1 or more)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_HISTORY:
        raise InvalidValue(f"limit must be a whole number from 1 to {MAX_HISTORY}")
    if before is not None and (not isinstance(before, int) or isinstance(before, bool) or before < 1):
        raise InvalidValue("before must be a press id (a whole number of 1 or more)")


def check_token(token: str) -> Optional[str]:
    """The admin token: InvalidValue when no request could ever send it; a warning when it is easy to guess.

    A header reaches Tornado as Latin-1 and a browser's fetch refuses anything else, so a
    token outside printable ASCII would never match: refuse it rather than serve a write API
    nobody can use. Spaces at either end (a stray newline in an environment file) are cut
    off by every client that sends the header, so they are refused too.
    """
    if any(not " " <= ch <= "~" for ch in token) or token != token.strip():
        raise InvalidValue("the admin token must be printable ASCII (letters, digits, punctuation) "
                           "with no space at either end; make one with: openssl rand -hex 16")
    if len(token) < MIN_TOKEN:
        return (f"the admin token is shorter than {MIN_TOKEN} characters: anyone on the LAN can guess it "
                "(make one with: openssl rand -hex 16)")
    return None


def name_key(name: Optional[str]) -> Optional[str]:
    """How names are compared (the leaderboard groups "ana" and "Ana"): casefolded, None for no name."""
    return None if name is None else name.casefold()


def local_month(at: str) -> str:
    """The calendar month ("2026-12") of an ISO time in this server's local time: the month leaderboards count."""
    return parse_time(at, "time").astimezone().strftime("%Y-%m")


def utc_ms(at: str, what: str = "time") -> str:
    """An ISO time with its offset as UTC to the millisecond: how stored times are written and compared as text."""
    parsed = parse_time(at, what).astimezone(datetime.timezone.utc)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000).isoformat(timespec="milliseconds")
