"""One error shape for every route: {"error": "..."} with the right status, and HEAD like GET.

``ErrorShape.write_error`` is the only place an error answer is written, for the JSON
routes, the pages, the static files and the feed's refused handshakes alike;
``error_of`` is the only place a store error becomes a status. ``Application`` sends
every request whose path no route takes to ``DefaultHandler`` (404), and refuses a URL
or a header block past its limit (414, 431) or a Host that is not ours (421) before any
handler sees it.
"""
from __future__ import annotations

import json
import logging
from http.client import responses
from types import TracebackType
from typing import Any, Dict, List, Optional, Tuple, Type

import tornado.web
from tornado.httputil import HTTPServerRequest
from tornado.log import access_log

from thebutton.hosts import HostRule, host_name
from thebutton.store import DeviceExists, InvalidValue, NothingToUndo, StoreError, TooFast, UnknownDevice

log = logging.getLogger("button.web")

MAX_URL = 8 * 1024  # bytes of the request target: more is 414
MAX_HEADERS = 32 * 1024  # bytes of all header lines: more is 431
READ_HEADERS = 1024 * 1024  # what Tornado reads of a request head before it gives up (drops it)
MAX_API_BODY = 4096  # bytes; a real body is a few dozen
MAX_READ_BODY = 1024 * 1024  # bytes read (and dropped) to answer 413 in words; more: cut off
NO_TORNADO_LIMIT = 1 << 62  # Tornado's own body limit, set out of reach: BaseHandler cuts first
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def server_options() -> Dict[str, Any]:
    """HTTPServer options: Tornado reads a large head, so that our limits can answer in words."""
    return {"max_header_size": READ_HEADERS, "max_body_size": MAX_READ_BODY}


def request_summary(request: HTTPServerRequest) -> str:
    """A request as the log names it: method, path and address, never the query string.

    A query can carry a token (``?token=``) or a note, and a device's URL is its secret:
    neither belongs in a log that anyone with access to the Pi can read.
    """
    path = request.path or ""
    if path.startswith("/hook/"):
        path = "/hook/..."
    return f"{request.method} {path[:200]} ({request.remote_ip})"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line of every answered request (the Application's log_function)."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %.2fms", status, request_summary(handler.request),
                   1000.0 * handler.request.request_time())


class WithoutRequestText(logging.Filter):
    """Keeps what a client sent out of Tornado's connection log ("Malformed HTTP message from
    ...: <the header lines>", which may hold a token): the line says from where, not what."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Malformed HTTP message from") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg, record.args = "Malformed HTTP message from %s", args[:1]
        return True


def keep_requests_out_of_tornados_log() -> None:
    general = logging.getLogger("tornado.general")
    if not any(isinstance(f, WithoutRequestText) for f in general.filters):
        general.addFilter(WithoutRequestText())


class ApiError(tornado.web.HTTPError):
    """An HTTP error whose message goes to the client as {"error": message}."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(status)
        self.message = message
        self.headers = headers or {}


def error_of(exc: Exception, what: str) -> ApiError:
    """The HTTP answer to a store's exception; ``what`` it was: "press", "set", "read the history"."""
    if isinstance(exc, InvalidValue):
        return ApiError(400, str(exc))
    if isinstance(exc, (NothingToUndo, DeviceExists)):
        return ApiError(409, str(exc))
    if isinstance(exc, UnknownDevice):
        return ApiError(404, str(exc))
    if isinstance(exc, TooFast):
        return ApiError(429, str(exc), {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, StoreError):  # StoreUnavailable too: Redis is away
        reading = what.startswith("read")
        log.error("cannot %s: %s" if reading else "%s not stored: %s", what, exc)
        return ApiError(503, f"cannot {what}: {exc}" if reading else f"not stored: {exc}")
    raise exc


def methods_of(handler: tornado.web.RequestHandler) -> List[str]:
    """The methods a handler class answers: those it defines, and HEAD where it has GET."""
    base = tornado.web.RequestHandler
    own = [m for m in METHODS if getattr(type(handler), m.lower()) is not getattr(base, m.lower())]
    return own[:1] + ["HEAD"] + own[1:] if "GET" in own else own


class ErrorShape(tornado.web.RequestHandler):
    """write_error for every handler: {"error": message}, the ApiError's headers, Allow on 405.

    Also log_exception, which Tornado's own would write with the whole URL (query string too).
    """

    def log_exception(self, typ: Optional[Type[BaseException]], value: Optional[BaseException],
                      tb: Optional[TracebackType]) -> None:
        if isinstance(value, ApiError):
            return  # an answer in words to the client's mistake: the access log has the line
        if isinstance(value, tornado.web.HTTPError):
            # Tornado's own message may quote what the client sent ("Invalid unicode in token:
            # b'...'"): the client gets it in the answer, the log only the status.
            if value.log_message:
                log.warning("%d %s: %s", value.status_code, request_summary(self.request),
                            responses.get(value.status_code, "error").lower())
            return
        log.error("uncaught exception in %s", request_summary(self.request), exc_info=(typ, value, tb))  # type: ignore[arg-type]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.clear_header("Content-Disposition")
        self.clear_header("Content-Encoding")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        message = None
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
            message = exc.message
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        if status_code == 405 and not (isinstance(exc, ApiError) and "Allow" in exc.headers):
            self.set_header("Allow", ", ".join(methods_of(self)))
        self.finish(json.dumps({"error": message or responses.get(status_code, "error").lower()}))


@tornado.web.stream_request_body
class BaseHandler(ErrorShape):
    """A route with our error shape and our body limits; a method it lacks is 405 first; HEAD like GET.

    The body is streamed so that its limits are ours, on every route: a body up to
    MAX_API_BODY is kept, one past it gets 413 in words (read and dropped up to
    MAX_READ_BODY, so that the client can read the answer), never Tornado's bare 400.
    """

    answered = False  # finish() has run: the answer is out
    max_body = MAX_API_BODY  # bytes of a body kept; a route that takes bigger ones (a CRM's webhook) says so

    def prepare(self) -> None:
        # Before any auth or body check: a method the route lacks is 405, whoever asks.
        allowed = methods_of(self)
        if self.request.method not in allowed:
            method = "GET" if self.request.method == "HEAD" else self.request.method  # HEAD answers like GET
            raise ApiError(405, f"{method} is not allowed here", {"Allow": ", ".join(allowed)})
        self.check_access()
        self.chunks: List[bytes] = []
        self.received = 0
        # data_received cuts a body off at MAX_READ_BODY itself, with an answer in words.
        self.request.connection.set_max_body_size(NO_TORNADO_LIMIT)  # type: ignore[union-attr]
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise ApiError(413, f"body larger than {self.max_body} bytes")

    def check_access(self) -> None:
        """Raise ApiError unless this request may go on (after the method check, before the body)."""

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received <= self.max_body:
            self.chunks.append(chunk)
        elif self.received > MAX_READ_BODY and not self.answered:
            # A chunked body that goes on and on: answer now; Tornado then closes the
            # connection instead of reading the rest.
            self.set_status(413)
            self.finish({"error": f"body larger than {self.max_body} bytes"})

    def on_finish(self) -> None:
        self.answered = True

    async def head(self, *args: str, **kwargs: str) -> None:
        # RequestHandler.flush sends no body for HEAD, and finish keeps the Content-Length.
        result = self.get(*args, **kwargs)
        if result is not None:
            await result


class JsonHandler(BaseHandler):
    """Base of the JSON routes: JSON, never cached, a body read as a JSON object."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def json_body(self, empty_ok: bool = False) -> Dict[str, Any]:
        """The request body as a JSON object; 413 or 400 in words otherwise."""
        if self.received > self.max_body:
            raise ApiError(413, f"body larger than {self.max_body} bytes")
        raw = b"".join(self.chunks)
        if not raw.strip():
            if empty_ok:
                return {}
            raise ApiError(400, "body must be a JSON object")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "body must be a JSON object, and this is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    def send_json(self, body: Dict[str, Any]) -> None:
        self.finish(json.dumps(body))


class DefaultHandler(JsonHandler):
    """Every path no route takes (404), and a request past a limit (Application.find_handler)."""

    def initialize(self, status: int = 404, message: Optional[str] = None) -> None:
        self.status = status
        self.message = message

    def prepare(self) -> None:
        # Before the method check: an unknown path is 404 whatever the method.
        raise ApiError(self.status, self.message or f"nothing at {self.request.path}"[:200])


def too_large(request: HTTPServerRequest) -> Optional[Tuple[int, str]]:
    """(status, message) when the request target or its headers are past our limits."""
    if len(request.uri or "") > MAX_URL:
        return 414, f"URL longer than {MAX_URL} bytes"
    size = sum(len(name) + len(value) + 4 for name, value in request.headers.get_all())
    if size > MAX_HEADERS:
        return 431, f"headers larger than {MAX_HEADERS} bytes"
    return None


def wrong_host(request: HTTPServerRequest, hosts: Optional[HostRule]) -> Optional[Tuple[int, str]]:
    """(421, message) when the request's Host is not a name this server answers to (thebutton/hosts.py)."""
    if hosts is None or hosts.allows_host(request.host):  # no Host at all (HTTP/1.0) reads as 127.0.0.1
        return None
    name = (host_name(request.host) or request.host)[:100]
    return 421, (f"this server does not answer to the name {name!r} (a page elsewhere must not read it); "
                 f"if it is yours, add it with --hosts={name}")


class Application(tornado.web.Application):
    """tornado.web.Application that refuses a URL or headers past our limits, and a Host that is
    not ours, in the one error shape; and logs requests without their query strings.

    ``hosts`` (a setting): the HostRule of the names it answers to; None answers any.
    """

    def __init__(self, *args: Any, **settings: Any) -> None:
        settings.setdefault("log_function", log_request)
        keep_requests_out_of_tornados_log()
        super().__init__(*args, **settings)

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        # Router.find_handler is Tornado's public routing interface.
        refused = too_large(request) or wrong_host(request, self.settings.get("hosts"))
        if refused is not None:
            status, message = refused
            return self.get_handler_delegate(request, DefaultHandler, {"status": status, "message": message})
        return super().find_handler(request, **kwargs)
