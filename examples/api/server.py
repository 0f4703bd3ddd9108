"""A small HTTP API standing in for the service under test.

Every request waits ``LATENCY`` seconds, as a real service behind a network
would, so the suite spends its time waiting on I/O: the case fleet's threads
are for.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY = 0.05
USERS = {"alice": "wonderland"}


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.items = {i: {"id": i, "name": f"item-{i}", "price": 10 * i} for i in range(1, 21)}
        self.orders: dict[int, dict] = {}
        self.next_order = 1


class Handler(BaseHTTPRequestHandler):
    store: Store

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _authorised(self) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        return token in self.store.tokens

    def do_POST(self) -> None:
        time.sleep(LATENCY)
        body = self._body()
        if self.path == "/login":
            if USERS.get(body.get("user")) != body.get("password"):
                return self._reply(401, {"error": "bad credentials"})
            token = secrets.token_hex(8)
            with self.store.lock:
                self.store.tokens.add(token)
            return self._reply(200, {"token": token})
        if not self._authorised():
            return self._reply(401, {"error": "login first"})
        if self.path == "/orders":
            with self.store.lock:
                order = {"id": self.store.next_order, "item": body["item"], "state": "new"}
                self.store.orders[order["id"]] = order
                self.store.next_order += 1
            return self._reply(201, order)
        self._reply(404, {"error": "no such path"})

    def do_GET(self) -> None:
        time.sleep(LATENCY)
        if not self._authorised():
            return self._reply(401, {"error": "login first"})
        kind, _, ident = self.path.strip("/").partition("/")
        table = {"items": self.store.items, "orders": self.store.orders}.get(kind)
        if table is None:
            return self._reply(404, {"error": "no such path"})
        if not ident:
            return self._reply(200, sorted(table.values(), key=lambda r: r["id"]))
        record = table.get(int(ident))
        self._reply(200 if record else 404, record or {"error": "not found"})

    def do_DELETE(self) -> None:
        time.sleep(LATENCY)
        if not self._authorised():
            return self._reply(401, {"error": "login first"})
        kind, _, ident = self.path.strip("/").partition("/")
        with self.store.lock:
            removed = self.store.orders.pop(int(ident), None) if kind == "orders" else None
        self._reply(204 if removed else 404, {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default of 5 makes parallel clients wait 1 s to reconnect


def serve() -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"store": Store()})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
