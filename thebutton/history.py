"""The history API: GET /api/history, /api/history.csv and /api/rounds.

Runs on the IOLoop thread; every store read runs in an executor thread (SQLite must
not block the IOLoop, nor Redis). Errors are {"error": "..."} like the rest of the API
(thebutton.web); a method other than GET is 405.

The CSV export takes ``limit`` (default 1000, at most 100,000) and ``before`` like
/api/history; it reads the store a page (1000 presses) at a time through history(),
so it works with any store, and sends the file once it is whole (100,000 presses are
about 6 MB of text).
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Callable, Dict, List, Optional, TypeVar

from tornado.ioloop import IOLoop

from thebutton.store import Store
from thebutton.validation import CSV_LIMIT, HISTORY_LIMIT, MAX_CSV_LIMIT, MAX_HISTORY
from thebutton.web import ApiError, JsonHandler, error_of

PAGE = MAX_HISTORY  # presses per store read (the most history() gives at once)
CSV_COLUMNS = ("id", "at", "source", "count_before", "count_after", "undone", "note")
CSV_FILENAME = "the-button-history.csv"
# A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # below 2**63: SQLite's and Redis's integers

T = TypeVar("T")


def spreadsheet_text(text: Optional[str]) -> str:
    """A text cell that a spreadsheet shows as text: a leading formula character gets a quote before it."""
    if text is None:
        return ""
    return "'" + text if text.startswith(FORMULA_START) else text


class StoreReader(JsonHandler):
    """Base of the read-only history routes: query arguments checked, store reads off the IOLoop."""

    def initialize(self, store: Store) -> None:
        self.store = store

    def limit(self, default: int, high: int) -> int:
        """The query argument ``limit``: 1..high, ``default`` when absent; 400 otherwise."""
        limit = self.whole_number("limit", default, 1, high)
        assert limit is not None  # absent is the default
        return limit

    def whole_number(self, name: str, default: Optional[int], low: int, high: Optional[int]) -> Optional[int]:
        """The query argument ``name`` as a whole number in low..high, ``default`` when absent; 400 otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        span = f"from {low} to {high:,}" if high is not None else f"of {low} or more"
        if not WHOLE_NUMBER.fullmatch(raw) or int(raw) < low or (high is not None and int(raw) > high):
            raise ApiError(400, f"{name} must be a whole number {span}")
        return int(raw)

    async def read(self, what: str, read: Callable[[], T]) -> T:
        """Run a store read in an executor thread; its errors become 400 or 503 in words."""
        try:
            return await IOLoop.current().run_in_executor(None, read)
        except Exception as e:  # error_of re-raises what is not a store's error
            raise error_of(e, f"read the {what}") from None


class HistoryHandler(StoreReader):
    """GET /api/history?limit=N&before=ID: {"presses": [...]}, newest first."""

    async def get(self) -> None:
        limit = self.limit(HISTORY_LIMIT, MAX_HISTORY)
        before = self.whole_number("before", None, 1, None)
        presses = await self.read("history", lambda: self.store.history(limit=limit, before=before))
        self.send_json({"presses": presses})


class HistoryCsvHandler(StoreReader):
    """GET /api/history.csv?limit=N&before=ID: the same presses as CSV, a header line first."""

    async def get(self) -> None:
        limit = self.limit(CSV_LIMIT, MAX_CSV_LIMIT)
        before = self.whole_number("before", None, 1, None)
        # The whole export is made before any of it is sent, so that an error on a later
        # page is still a JSON error, not a file cut short that looks complete.
        text = await self.read("history", lambda: history_csv(self.store, limit, before))
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{CSV_FILENAME}"')
        self.finish(text)


def history_csv(store: Store, limit: int, before: Optional[int]) -> str:
    """Up to ``limit`` presses below ``before`` as CSV text, read a page at a time. Runs in an executor thread."""
    out = io.StringIO()
    out.write("\ufeff")  # a byte order mark: Excel then reads the file as UTF-8 (notes with é, ☕)
    writer = csv.writer(out)  # RFC 4180: quoted where needed, CRLF line ends
    writer.writerow(CSV_COLUMNS)
    left = limit
    while left > 0:
        page = store.history(limit=min(PAGE, left), before=before)
        writer.writerows(csv_row(press) for press in page)
        left -= len(page)
        if len(page) < PAGE:
            break
        before = page[-1]["id"]
    return out.getvalue()


def csv_row(press: Dict[str, Any]) -> List[object]:
    return [press["id"], press["at"], spreadsheet_text(press["source"]), press["count_before"],
            press["count_after"], "true" if press["undone"] else "false", spreadsheet_text(press["note"])]


class RoundsHandler(StoreReader):
    """GET /api/rounds: {"rounds": [...]}, newest (the current round) first."""

    async def get(self) -> None:
        rounds = await self.read("rounds", self.store.rounds)
        self.send_json({"rounds": rounds})
