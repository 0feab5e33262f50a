"""The history API: GET /api/history, /api/history.csv and /api/rounds.

Runs on the IOLoop thread; every store read runs in an executor thread (SQLite must
not block the IOLoop, nor Redis). Errors are {"error": "..."} like the rest of the API
(thebutton.web); a method other than GET is 405.

The CSV export takes ``limit`` (default 1000, at most 100,000) and ``before`` like
/api/history; it reads the store a page (1000 presses) at a time through history(),
so it works with any store, and sends the file once it is whole (100,000 presses are
about 6 MB of text). At most ``MAX_EXPORTS`` run at once, each page on the exports' own
threads: presses and the feed never queue behind an export (bench/exports.py).
"""
from __future__ import annotations

import asyncio
import csv
import functools
import io
import re
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, TypeVar

from tornado.ioloop import IOLoop

from thebutton.rounds import local_now, period_start
from thebutton.store import Store
from thebutton.validation import CSV_LIMIT, HISTORY_LIMIT, MAX_CSV_LIMIT, MAX_HISTORY
from thebutton.web import ApiError, JsonHandler, error_of

PAGE = MAX_HISTORY  # presses per store read (the most history() gives at once)
CSV_COLUMNS = ("id", "at", "source", "count_before", "count_after", "undone", "note", "by", "device")
CSV_FILENAME = "the-button-history.csv"
# A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
FORMULA_START = frozenset("=+-@\t\r")
# Where a spreadsheet may start a cell: at a comma, or at a semicolon in the many locales
# (German, French, Dutch...) whose spreadsheets split CSV there.
CELL_BREAKS = frozenset(",;\r\n")
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")  # below 2**63: SQLite's and Redis's integers
MAX_EXPORTS = 2  # CSV exports running at once on one server; a third waits (429)
EXPORT_RETRY = 5  # seconds a refused export is told to wait
EXPORT_PAUSE = 0.005  # seconds between the pages of an export

T = TypeVar("T")


def spreadsheet_text(text: Optional[str]) -> str:
    """A text that no spreadsheet reads as a formula, whether it splits the file at commas or at semicolons.

    Wherever a cell could begin (the start, and after each comma or semicolon), after any
    double quotes there (CSV's own quoting, or the text's), a formula character gets a
    ``'`` before it, which spreadsheets read as "this is text".
    """
    if text is None:
        return ""
    out = []
    cell_start = True
    for ch in text:
        if cell_start and ch != '"':
            if ch in FORMULA_START:
                out.append("'")
            cell_start = False
        out.append(ch)
        if ch in CELL_BREAKS:
            cell_start = True
    return "".join(out)


class Exports:
    """The CSV exports of one application: at most MAX_EXPORTS at once, on threads of their own.

    Their own threads, so that a press (which runs in the IOLoop's default executor) never
    waits for a free thread behind exports. Counted on the IOLoop thread only.
    """

    def __init__(self, most: int = MAX_EXPORTS) -> None:
        self.most = most
        self.running = 0
        self.executor: Executor = ThreadPoolExecutor(most, thread_name_prefix="export")


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

    async def read(self, what: str, read: Callable[[], T], executor: Optional[Executor] = None) -> T:
        """Run a store read in an executor thread; its errors become 400 or 503 in words."""
        try:
            return await IOLoop.current().run_in_executor(executor, read)
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

    gone = False  # the client went away: stop reading pages for it

    def initialize(self, store: Store, exports: Exports) -> None:  # type: ignore[override]
        super().initialize(store)
        self.exports = exports

    def on_connection_close(self) -> None:
        self.gone = True

    async def get(self) -> None:
        limit = self.limit(CSV_LIMIT, MAX_CSV_LIMIT)
        before = self.whole_number("before", None, 1, None)
        exports = self.exports
        if exports.running >= exports.most:
            raise ApiError(429, f"{exports.most} exports are running: try again in {EXPORT_RETRY} s",
                           {"Retry-After": str(EXPORT_RETRY)})
        exports.running += 1
        try:
            # The whole export is made before any of it is sent, so that an error on a later
            # page is still a JSON error, not a file cut short that looks complete. One page
            # per executor call: between pages the IOLoop has its turn.
            text = await self.export(limit, before)
        finally:
            exports.running -= 1
        if text is None:
            return  # nobody to send it to
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{CSV_FILENAME}"')
        self.finish(text)

    async def export(self, limit: int, before: Optional[int]) -> Optional[str]:
        out = io.StringIO()
        out.write("\ufeff")  # a byte order mark: Excel then reads the file as UTF-8 (notes with é, ☕)
        writer = csv.writer(out)  # RFC 4180: quoted where needed, CRLF line ends
        writer.writerow(CSV_COLUMNS)
        left = limit
        while left > 0:
            if self.gone:
                return None
            size = min(PAGE, left)
            page = await self.read("history", functools.partial(csv_page, self.store, writer, size, before),
                                   self.exports.executor)
            left -= len(page)
            if len(page) < size:
                break
            before = page[-1]["id"]
            # A breath between pages: two exports formatting rows would otherwise keep the
            # GIL and the cores busy, and presses would reach the screens twice as slowly
            # (bench/README.md). 100,000 presses take about 0.5 s longer.
            await asyncio.sleep(EXPORT_PAUSE)
        return out.getvalue()


def csv_page(store: Store, writer: Any, size: int, before: Optional[int]) -> List[Dict[str, Any]]:
    """One page of presses below ``before``, written as CSV rows; returns the page. Runs in an export thread."""
    page = store.history(limit=size, before=before)
    writer.writerows(csv_row(press) for press in page)
    return page


def csv_row(press: Dict[str, Any]) -> List[object]:
    return [press["id"], press["at"], spreadsheet_text(press["source"]), press["count_before"],
            press["count_after"], "true" if press["undone"] else "false", spreadsheet_text(press["note"]),
            spreadsheet_text(press.get("by")), spreadsheet_text(press.get("device"))]


class LeaderboardHandler(StoreReader):
    """GET /api/leaderboard?period=round|month|all: who pressed most (month: this calendar month, local time)."""

    async def get(self) -> None:
        period = self.get_query_argument("period", "round")  # the store checks it: a bad one is 400
        since = period_start(local_now(), "monthly").isoformat() if period == "month" else None
        board = await self.read("leaderboard", lambda: self.store.leaderboard(period, since=since))
        self.send_json(board)


class RoundsHandler(StoreReader):
    """GET /api/rounds: {"rounds": [...]}, newest (the current round) first."""

    async def get(self) -> None:
        rounds = await self.read("rounds", self.store.rounds)
        self.send_json({"rounds": rounds})
