"""py-inventory: the `inventory` example's stock, sold from Python.

A wasi:http handler built with componentize-py. It keeps its stock in the
same `inventory` store as the Rust `inventory` example and the C `c-stock`
one, under the SKU itself, as ASCII decimal: all three sell the same units.

- `PUT /py-inventory/<sku>` with an integer body seeds the stock.
- `GET /py-inventory/<sku>`: `{"sku":..,"stock":N}`, or 404.
- `POST /py-inventory/<sku>/reserve?qty=N`: `{"sku":..,"remaining":N}`, or
  409 with `{"error":"insufficient","remaining":N}`.

A reservation is one bounded add (`wedge:keyvalue/bounded`): the store
takes `qty` off only if the stock stays at 0 or more, atomically, so no
number of concurrent buyers can oversell.
"""

import json
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import bounded, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    Method_Put,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

ROUTE = "/py-inventory"
MAX_STOCK = 2**63 - 1
SKU_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, body = route(request)
        except Err as e:
            status, body = 500, {"error": f"store: {e.value}"}
        respond(response_out, status, body)


def route(request: IncomingRequest):
    path_and_query = request.path_with_query() or "/"
    path, _, query = path_and_query.partition("?")
    parts = path[len(ROUTE):].strip("/").split("/") if path.startswith(ROUTE) else []
    method = request.method()
    if not parts or not valid_sku(parts[0]):
        return 400, {"error": "a sku is 1-128 of A-Z a-z 0-9 - _ ."}
    sku = parts[0]
    bucket = store.open("inventory")
    if isinstance(method, Method_Put) and len(parts) == 1:
        text = read_body(request).strip()
        if not text.isdigit():
            return 400, {"error": "the body must be a stock count, 0 or more"}
        bucket.set(sku, text.encode())
        return 200, {"sku": sku, "stock": int(text)}
    if isinstance(method, Method_Get) and len(parts) == 1:
        value = bucket.get(sku)
        if value is None:
            return 404, {"error": "unknown sku"}
        return 200, {"sku": sku, "stock": int(value)}
    if isinstance(method, Method_Post) and parts[1:] == ["reserve"]:
        qty = parse_qs(query).get("qty", ["1"])[0]
        if not qty.isdigit() or int(qty) < 1:
            return 400, {"error": "qty is a whole number, 1 or more"}
        remaining = bounded.add(bucket, sku, -int(qty), 0, MAX_STOCK)
        if remaining is None:
            left = bucket.get(sku)
            return 409, {"error": "insufficient", "remaining": int(left or b"0")}
        return 200, {"sku": sku, "remaining": remaining}
    return 404, {"error": "no such endpoint"}


def valid_sku(sku: str) -> bool:
    return 0 < len(sku) <= 128 and set(sku) <= SKU_CHARS


def read_body(request: IncomingRequest) -> str:
    body = request.consume()
    stream = body.stream()
    data = b""
    while len(data) < 64:
        try:
            data += stream.blocking_read(64)
        except Err:
            break
    stream.__exit__(None, None, None)
    return data.decode(errors="replace")


def respond(response_out: ResponseOutparam, status: int, body: dict) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = outgoing.write()
    stream.blocking_write_and_flush(json.dumps(body, separators=(",", ":")).encode())
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)
