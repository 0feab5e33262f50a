"""Devices: presses from anywhere, through a secret URL per device (CONTRACT.md, "Devices").

``/api/devices`` (bearer) adds, lists and removes devices; ``/hook/<secret>`` (no bearer:
the secret is the key) presses for a device of kind "button", or turns a Pipedrive webhook
of kind "pipedrive" into a press when a deal is won. A press goes through the store's
``press(device=...)`` and from there along the one change path like any other.

The secret is made here, shown once in the answer to the POST, and never kept: the store
holds its sha256 only, finds a device by that hash and the hash is compared once more in
constant time. The access log writes the path as /hook/... (thebutton/web.py); our own
lines name the device, never the secret. Runs on the IOLoop thread; the store is called
in an executor thread.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import urllib.parse
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from tornado.ioloop import IOLoop

from thebutton.api import StateHandler, unknown_fields
from thebutton.hosts import client_key
from thebutton.store import Duplicate
from thebutton.validation import clean_note
from thebutton.web import ApiError, error_of

log = logging.getLogger("button.devices")

SECRET_BYTES = 24  # random bytes of a secret: 192 bits, 32 URL-safe characters
MAX_HOOK_BODY = 64 * 1024  # bytes: a Pipedrive deal with many custom fields is a few KB
HOOK_FIELDS = ("note", "by", "id", "at")
PIPEDRIVE_GET = "Pipedrive sends a POST with a JSON body; nothing to do for a GET"

T = TypeVar("T")


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    """How a secret is kept and looked up: its sha256, hex (a leaked copy of the store opens nothing)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def off_loop(call: Callable[[], T], what: str) -> T:
    """Run a store call in an executor thread; its errors become answers (web.error_of)."""
    try:
        return await IOLoop.current().run_in_executor(None, call)
    except Exception as e:  # error_of re-raises what is not a store's error
        raise error_of(e, what) from None


class DevicesHandler(StateHandler):
    """GET /api/devices (the list, no secrets) and POST /api/devices (a new one, its URL shown once)."""

    def check_access(self) -> None:
        self.authorize()  # the list too: it is for the people who run it

    async def get(self) -> None:
        devices = await off_loop(self.store.devices, "read the devices")
        self.send_json({"devices": devices})

    async def post(self) -> None:
        body = self.json_body()
        unknown_fields(body, ("name", "by", "kind"))
        secret = new_secret()
        hashed = secret_hash(secret)
        device = await off_loop(lambda: self.store.add_device(body.get("name"), body.get("kind"), body.get("by"),
                                                              hashed), "add a device")
        log.info("device %r (%s) added", device["name"], device["kind"])
        self.set_status(201)
        self.send_json({"name": device["name"], "kind": device["kind"], "by": device["by"],
                        "url": f"/hook/{secret}", "created": device["created"]})


class DeviceHandler(StateHandler):
    """DELETE /api/devices/<name>: 204; from then on its URL answers 404."""

    def check_access(self) -> None:
        self.authorize()

    async def delete(self, name: str) -> None:
        await off_loop(lambda: self.store.remove_device(name), "remove a device")
        log.info("device %r removed", name)
        self.set_status(204)
        self.finish()


class HookHandler(StateHandler):
    """GET or POST /hook/<secret>: a device's press. HEAD only says whether the URL is a device's."""

    max_body = MAX_HOOK_BODY

    def check_access(self) -> None:
        """No bearer token: the secret in the path is the key (Pipedrive's HTTP Basic auth, if set, is ignored)."""

    async def head(self, *args: str, **kwargs: str) -> None:
        """Like GET without the press (an uptime monitor's HEAD must not count)."""
        device = await self.device(args[0])
        if device["kind"] == "pipedrive":
            self.send_json({"ignored": PIPEDRIVE_GET})
            return
        self.send_json(self.state_body(self.feed.state))

    async def get(self, secret: str) -> None:
        device = await self.device(secret)
        if device["kind"] == "pipedrive":
            self.send_json({"ignored": PIPEDRIVE_GET})
            return
        await self.press(device, self.fields({}))

    async def post(self, secret: str) -> None:
        device = await self.device(secret)
        if device["kind"] == "pipedrive":
            fields, why = pipedrive_press(self.raw_json())
            if fields is None:
                self.send_json({"ignored": why})
                return
            await self.press(device, fields)
            return
        await self.press(device, self.fields(self.body_fields()))

    async def device(self, secret: str) -> Dict[str, Any]:
        """The device of this secret, or 404 counted as a wrong token (429 after too many)."""
        address = client_key(self.request.remote_ip or "?")
        wait = self.throttle.retry_after(address)
        if wait is not None:
            raise ApiError(429, f"too many wrong tokens from {address}: try again in {wait} s",
                           {"Retry-After": str(wait)})
        hashed = secret_hash(secret)
        device = await off_loop(lambda: self.store.device_by_secret(hashed), "read the devices")
        if device is None or not hmac.compare_digest(str(device["hash"]).encode(), hashed.encode()):
            self.throttle.fail(address)
            log.warning("a device URL that is no device's from %s", address)
            raise ApiError(404, "no device at this URL (it was removed, or the URL is mistyped)")
        return device

    def raw_json(self) -> Any:
        """The body as JSON, or None when it is none or not JSON (for Pipedrive: ignored, not an error)."""
        if self.received > self.max_body:
            raise ApiError(413, f"body larger than {self.max_body} bytes")
        try:
            return json.loads(b"".join(self.chunks))
        except (ValueError, RecursionError):
            return None

    def body_fields(self) -> Dict[str, Any]:
        """A button's body: none, a JSON object, or a form (Zapier's default payload type)."""
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = b"".join(self.chunks)
        # curl -d and many devices label a JSON body as a form: what it looks like decides.
        if kind == "application/x-www-form-urlencoded" and raw.strip()[:1] not in (b"{", b"["):
            return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return self.json_body(empty_ok=True)

    def fields(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """note, by, id and at from the query and the body (the body wins); the id also from Idempotency-Key."""
        unknown_fields({name: None for name in self.request.query_arguments}, HOOK_FIELDS)
        unknown_fields(body, HOOK_FIELDS)
        fields: Dict[str, Any] = {}
        for name, values in self.request.query_arguments.items():
            # As sent, like a body's field: Tornado's get_query_argument would trim it and turn
            # control characters into spaces, so that ?id= and a body's id could differ.
            try:
                fields[name] = values[-1].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"{name} is not UTF-8") from None
        fields.update(body)
        key = self.request.headers.get("Idempotency-Key")
        if fields.get("id") is None and key is not None:  # "id": null (an empty template field) is no id
            fields["id"] = key
        return fields

    async def press(self, device: Dict[str, Any], fields: Dict[str, Any]) -> None:
        by = fields["by"] if "by" in fields else device["by"]
        try:
            state = await IOLoop.current().run_in_executor(None, lambda: self.store.press(
                source="device", note=fields.get("note"), by=by, device=device["name"], at=fields.get("at"),
                idem=fields.get("id")))
        except Duplicate as d:
            log.info("a repeat of a press already counted from device %r", device["name"])
            body = self.state_body(d.state)
            body["duplicate"] = True
            self.send_json(body)
            return
        except Exception as e:  # error_of re-raises what is not a store's error
            raise error_of(e, "press") from None
        self.send_json(self.state_body(state))


def pipedrive_press(body: Any) -> Tuple[Optional[Dict[str, Any]], str]:
    """The press a Pipedrive webhook (v2) makes, or None and why it makes none.

    A press is a deal whose status changes to won: meta.entity "deal", meta.action "change",
    data.status "won", and previous.status there and not "won" (v2's "previous" holds the
    fields that changed). Its note is the deal's title (made to fit the note rules), its id
    "deal-<id>-won", so that a retry (meta.attempt 2, the same body) or the same deal won
    again within 24 h counts once.
    """
    if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
        return None, "not a Pipedrive webhook (v2): no meta"
    meta = body["meta"]
    if "entity" not in meta and ("v" in meta or "object" in meta):
        return None, "a Pipedrive webhook of version 1: make the webhook again with version 2"
    if meta.get("entity") != "deal":
        return None, f"not a deal: {str(meta.get('entity'))[:40]}"
    if meta.get("action") != "change":
        return None, f"not a change of a deal: {str(meta.get('action'))[:40]}"
    data, previous = body.get("data"), body.get("previous")
    if not isinstance(data, dict):
        return None, "no deal data"
    if data.get("status") != "won":
        return None, f"the deal is {str(data.get('status'))[:40]}, not won"
    if not isinstance(previous, dict) or "status" not in previous:
        return None, "the deal's status did not change"
    if previous["status"] == "won":
        return None, "the deal was already won"
    deal = data.get("id", meta.get("entity_id"))
    if isinstance(deal, bool) or not isinstance(deal, (int, str)) or not str(deal).strip():
        return None, "the deal has no id"
    return {"note": clean_note(data.get("title")), "id": f"deal-{str(deal)[:60]}-won"}, ""
