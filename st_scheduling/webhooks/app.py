"""The receiver as an ASGI app: `POST /webhooks/scheduling-pro` takes both Scheduling Pro events, `GET /health`
says whether the inbox accepts them.

A delivery is answered 200 only once its event is on disk (or was already: a duplicate), so ServiceTitan retries
everything else. Refusals: 413 too large, 415 not JSON, 401 unsigned or forged (when a key is set), 400 malformed,
422 another event type or too old, 503 when the inbox cannot store it (retried). Its log names the status, the
reason, the event type, the tenant and the userassignedid, never a session's content or the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from st_scheduling.webhooks import envelope
from st_scheduling.webhooks.inbox import InboxBroken, Writer

PATH = "/webhooks/scheduling-pro"
CONTENT_TYPES = ("application/cloudevents+json", "application/json")
log = logging.getLogger("st_scheduling.webhooks")


@dataclass(frozen=True)
class ReceiverSettings:
    key: str | None  # the HMAC key; None accepts unsigned events (only behind a network that admits ServiceTitan)
    signature_header: str
    signature_format: str
    max_body_bytes: int
    max_age: timedelta


def create_app(
    settings: ReceiverSettings, inbox: Writer, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            event = await _accept(request, settings, now())
            stored = await asyncio.wrap_future(inbox.submit(event.userassignedid, event.document))
        except envelope.Refused as refused:
            log.warning("refused %s: %s", refused.status, refused.reason)
            return JSONResponse({"error": refused.reason}, status_code=refused.status)
        except InboxBroken as err:
            log.error("not stored (503): %s", err)
            return JSONResponse({"error": "the inbox cannot store events now; retry later"}, status_code=503)
        outcome = "stored" if stored else "duplicate"
        log.info(
            "%s %s tenant %s userassignedid %s (%.1f ms)",
            outcome,
            event.type,
            event.tenant_id,
            event.userassignedid,
            (time.perf_counter() - started) * 1000,
        )
        return JSONResponse({"status": outcome})

    async def health(_: Request) -> JSONResponse:
        if inbox.broken is not None:
            return JSONResponse({"status": "broken", "error": type(inbox.broken).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "events": len(inbox), "signed": settings.key is not None})

    return Starlette(routes=[Route(PATH, receive, methods=["POST"]), Route("/health", health, methods=["GET"])])


async def _accept(request: Request, settings: ReceiverSettings, now: datetime) -> envelope.Event:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise envelope.Refused(413, f"too large: more than {settings.max_body_bytes} bytes")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise envelope.Refused(415, f"not {' or '.join(CONTENT_TYPES)}")
    body = bytearray()
    async for chunk in request.stream():  # a chunked body declares no length: counted as it arrives
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise envelope.Refused(413, f"too large: more than {settings.max_body_bytes} bytes")
    if settings.key is not None:
        envelope.verify(
            bytes(body), request.headers.get(settings.signature_header), settings.key, settings.signature_format
        )
    return envelope.parse(bytes(body), now, settings.max_age)
