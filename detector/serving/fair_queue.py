"""A fair share of the queue for each client, as ASGI middleware.

`FairQueue` caps the events each client has waiting or running (`MAX_PENDING_PER_CLIENT`, and
`MAX_HEAVY_PER_CLIENT` of the heavy ones), so that one client cannot fill the queue and lock
everyone else out; a client over its share is answered 429 with ``Retry-After``.
``NeutralUploadNames(app, fair_queue={...})`` (`detector.serving.asgi`) puts one behind the
upload middleware. Pure ASGI and the standard library only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from detector.serving.protocol import (
    MAX_JSON_BYTES,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    _answer_json,
    log,
)

#: Events one client may have waiting or running at once, and how many of those may be heavy.
MAX_PENDING_PER_CLIENT = 16
MAX_HEAVY_PER_CLIENT = 6
#: Seconds after which an event stops counting against its client, whatever the app says.
PENDING_MAX_AGE_S = 1800.0
#: What a client over its share is told (with 429 and ``Retry-After``).
TOO_MANY_PENDING = (
    "Too many of your requests are waiting ({count}); try again when some have finished."
)
# Routes that start an event: Gradio's queue and its REST routes (``/call/<api>``,
# ``/call/v2/<api>``, ``/run/<api>``, ``/api/<api>``); ``GET /call/<api>/<event id>`` streams
# a result and starts nothing.
_EVENT_ROUTE = re.compile(r"/(?:queue/join|(?:call|run|api)/(?:v2/)?(?P<api>[^/]+))/?\Z")


def client_key(scope: Scope) -> str:
    """Who sent a request: the first hop of ``X-Forwarded-For`` when present (the address the
    front proxy saw), else the peer address.

    The first hop is what the client or the first proxy wrote: behind a proxy that does not
    overwrite the header, a client can pick its own key.
    """
    for key, value in scope.get("headers") or []:
        if key.lower() == b"x-forwarded-for":
            first = value.decode("latin-1").split(",")[0].strip()
            if first:
                return first[:100]
    client = scope.get("client")
    return str(client[0]) if client else "-"


@dataclass(eq=False)
class _Ticket:
    """One event a client started: counted while its request runs, then while the app still
    holds its event id (at most `FairQueue.max_age` seconds)."""

    heavy: bool
    created: float
    in_flight: bool = True
    event_id: str | None = None


class FairQueue:
    """ASGI middleware: each client may have at most ``max_pending`` events waiting or running
    (``max_heavy`` of them heavy); past that, a new one is answered 429 before the app sees it.

    An event is a ``POST`` to a route that starts one (``/queue/join``, ``/call/<api>``,
    ``/run/<api>``, ``/api/<api>``). It counts from its request until the answer, and then, when
    the answer holds an ``event_id`` (the queue accepted it), for as long as ``pending(event_id)``
    says the app still holds it. It stops counting after ``max_age`` seconds in any case, so a
    count cannot leak, whatever the app or the client do. Without ``pending``, an event counts
    only while its request runs.

    An event is heavy when its api name is in ``heavy_apis`` or its ``fn_index`` (read from the
    JSON body of ``/queue/join``, at most ``max_body_bytes``) is in ``heavy_events``; a body
    without a readable ``fn_index`` counts as heavy.

    Args:
        app: The ASGI app to wrap.
        pending: Whether the app still holds (queues or runs) an event id.
        heavy_events: ``fn_index`` values of heavy events.
        heavy_apis: Api names of heavy events.
        max_pending: Events per client.
        max_heavy: Heavy events per client.
        max_age: Seconds after which an event no longer counts.
        max_body_bytes: Largest ``/queue/join`` body read for its ``fn_index``.
        clock: Monotonic seconds (for tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        pending: Callable[[str], bool] | None = None,
        heavy_events: Collection[int] = (),
        heavy_apis: Collection[str] = (),
        max_pending: int = MAX_PENDING_PER_CLIENT,
        max_heavy: int = MAX_HEAVY_PER_CLIENT,
        max_age: float = PENDING_MAX_AGE_S,
        max_body_bytes: int = MAX_JSON_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.pending = pending
        self.heavy_events = frozenset(heavy_events)
        self.heavy_apis = frozenset(heavy_apis)
        self.max_pending = max_pending
        self.max_heavy = max_heavy
        self.max_age = max_age
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self._tickets: dict[str, list[_Ticket]] = {}
        self._calls = 0

    def counted(self, key: str) -> tuple[int, int]:
        """(events, heavy events) that count against client ``key`` now."""
        tickets = self._live(key, self.clock())
        return len(tickets), sum(t.heavy for t in tickets)

    def _counts(self, ticket: _Ticket, now: float) -> bool:
        if now - ticket.created > self.max_age:
            return False
        if ticket.in_flight:
            return True
        if ticket.event_id is None or self.pending is None:
            return False
        try:
            return bool(self.pending(ticket.event_id))
        except Exception:  # a broken predicate must not lock clients out
            log.exception("pending(%r) failed", ticket.event_id)
            return False

    def _live(self, key: str, now: float) -> list[_Ticket]:
        tickets = [t for t in self._tickets.get(key, ()) if self._counts(t, now)]
        if tickets:
            self._tickets[key] = tickets
        else:
            self._tickets.pop(key, None)
        return tickets

    def _sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % 256 == 0:
            for key in list(self._tickets):
                self._live(key, now)

    async def _fn_index(self, receive: Receive) -> tuple[int | None, Receive]:
        """The ``fn_index`` of a JSON body (None if unreadable), and a receive that replays it."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes or not message.get("more_body", False):
                break
        fn_index = None
        if size <= self.max_body_bytes and messages[-1]["type"] == "http.request":
            try:
                data = json.loads(b"".join(m.get("body", b"") for m in messages))
            except (ValueError, RecursionError):
                data = None
            value = data.get("fn_index") if isinstance(data, dict) else None
            fn_index = value if isinstance(value, int) and not isinstance(value, bool) else None

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return fn_index, replay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _EVENT_ROUTE.search(str(scope.get("path") or ""))
            if scope["type"] == "http" and str(scope.get("method", "")).upper() == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        if match["api"] is not None:
            heavy = match["api"] in self.heavy_apis
        else:
            fn_index, receive = await self._fn_index(receive)
            heavy = fn_index is None or fn_index in self.heavy_events
        key = client_key(scope)
        now = self.clock()
        self._sweep(now)
        tickets = self._live(key, now)
        heavy_count = sum(t.heavy for t in tickets)
        if len(tickets) >= self.max_pending or (heavy and heavy_count >= self.max_heavy):
            count = heavy_count if heavy and heavy_count >= self.max_heavy else len(tickets)
            await _answer_json(
                send, 429, TOO_MANY_PENDING.format(count=count), [(b"retry-after", b"10")]
            )
            return
        ticket = _Ticket(heavy, now)
        self._tickets.setdefault(key, []).append(ticket)
        status = 0
        answer = bytearray()

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(answer) <= 4096:
                answer.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            ticket.in_flight = False
            ticket.event_id = _event_id(answer) if status == 200 else None
            if ticket.event_id is None or self.pending is None:
                self._live(key, self.clock())  # drops this ticket now


def _event_id(answer: bytes | bytearray) -> str | None:
    """The ``event_id`` of a small JSON answer, or None."""
    if len(answer) > 4096:
        return None
    try:
        data = json.loads(bytes(answer))
    except ValueError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
