"""Yardstick: the `websockets` library's broadcast(), with an HTTP press route on the same port, in memory."""
import asyncio
import http
import json
import sys

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

GOAL = 20
state = {"count": GOAL, "goal": GOAL, "presses": 0}
clients = set()


def message(event):
    return json.dumps(dict(state, event=event))


async def handler(ws):
    clients.add(ws)
    try:
        await ws.send(message("state"))
        await ws.wait_closed()
    finally:
        clients.discard(ws)


def process_request(connection, request):
    # websockets answers only GET; presses come as GET /api/press here (the client knows).
    if request.path == "/api/press":
        state["count"] = GOAL if state["count"] <= 0 else state["count"] - 1
        state["presses"] += 1
        msg = message("press")
        broadcast(clients, msg)
        body = msg.encode()
        return Response(200, "OK", Headers([("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body)))]), body)
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    return None


async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), process_request=process_request,
                     compression=None, ping_interval=20, max_queue=1):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
