"""Pages of the API's list endpoints: the envelope, the records' required keys and types, and the bounds
that keep a misbehaving server from paging forever.

A page parser turns one response body into a `Page`. The client's own parser gives records as dicts; the
ingest layer plugs in one that gives Arrow tables. Either way the paging rules here are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeAlias, TypeVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from st_scheduling.servicetitan import models
from st_scheduling.servicetitan.errors import MalformedResponseError, PagingError, RecordTypeError
from st_scheduling.servicetitan.memory import POOL, Body

MAX_PAGE_SIZE = 5000
MIB = 1024 * 1024
R = TypeVar("R", covariant=True)  # so `PageBounds` takes any page as a Page[object]


@dataclass(frozen=True)
class Page(Generic[R]):
    number: int
    records: R  # a list of records from `parse_records`, or whatever a plugged-in parser gives
    ids: Sequence[str]
    has_more: bool
    total_count: int | None
    size_bytes: int
    retries: int = 0  # set by the client: transient failures retried before this page came back


# (body, endpoint, page number) -> Page. The client reads bodies into Arrow memory (see `transport.Body`); bytes
# parse the same.
PageParser: TypeAlias = Callable[[bytes | Body, str, int], Page[R]]


def envelope(body: object, endpoint: str, number: int) -> tuple[list[Any], bool, int | None]:
    """The data, hasMore and totalCount of a parsed page, each checked for its type."""
    if not isinstance(body, dict):
        raise MalformedResponseError(endpoint, number, f"expected a JSON object, got {type(body).__name__}")
    data, has_more, total = body.get("data"), body.get("hasMore"), body.get("totalCount")
    if not isinstance(data, list):
        raise MalformedResponseError(endpoint, number, f"'data' is {type(data).__name__}, expected an array")
    if not isinstance(has_more, bool):
        raise MalformedResponseError(endpoint, number, f"'hasMore' is {type(has_more).__name__}, expected a boolean")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise MalformedResponseError(
            endpoint, number, f"'totalCount' is {type(total).__name__}, expected a non-negative integer"
        )
    return data, has_more, total


def check_record(
    record: object, shape: models.Shape, endpoint: str, page: int | None, position: int | None
) -> models.Record:
    """The record, once checked: an object whose key fields are present and non-null and whose fields have the
    spec's types."""
    if not isinstance(record, dict):
        raise RecordTypeError(endpoint, page, position, "(record)", f"is {type(record).__name__}, expected an object")
    for name in models.key_fields(shape):
        if record.get(name) is None:
            raise RecordTypeError(endpoint, page, position, name, "missing or null (it is required)")
    if problem := models.first_type_error(record, shape):
        field, expected, value = problem
        raise RecordTypeError(endpoint, page, position, field, f"of type {type(value).__name__}, expected {expected}")
    return record


def parse_records(shape: models.Shape) -> PageParser[list[models.Record]]:
    """A parser giving the page's records as dicts, each checked against `shape`."""

    def parse(body: bytes | Body, endpoint: str, number: int) -> Page[list[models.Record]]:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedResponseError(endpoint, number, "not valid JSON", retryable=True) from None
        records, has_more, total = envelope(parsed, endpoint, number)
        for position, record in enumerate(records):
            check_record(record, shape, endpoint, number, position)
        return Page(number, records, [r.get("id") for r in records], has_more, total, len(body))

    return parse


class DistinctIds:
    """Counts the distinct ids of many pages, exactly and compactly: an id written as a lowercase UUID (the API's
    own ids) is kept as its 16 bytes, any other as an Arrow string. A Python set of a million ids held about 160
    MB and Arrow strings about 40 MB (measured in `make bench`)."""

    def __init__(self) -> None:
        self._uuids: list[pa.Array] = []
        self._others: list[pa.Array] = []

    def add(self, ids: Sequence[str]) -> None:
        if len(ids):
            uuids, others = _split_uuids(pa.array(ids, pa.string(), memory_pool=POOL))
            self._uuids.append(uuids)
            self._others.append(others)

    def count(self) -> int:
        # The two kinds never hold the same id: one spelling of a UUID is packed, every other kept as written.
        return sum(
            int(pc.count_distinct(pa.chunked_array(chunks, type_), memory_pool=POOL).as_py())
            for chunks, type_ in ((self._uuids, _UUID_BYTES), (self._others, pa.string()))
        )


_UUID_BYTES = pa.binary(16)
_UUID_HYPHENS = [8, 13, 18, 23]
_UUID_DIGITS = [i for i in range(36) if i not in _UUID_HYPHENS]
_NOT_HEX = 16
_HEX_VALUE = np.full(256, _NOT_HEX, np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _split_uuids(ids: pa.StringArray) -> tuple[pa.Array, pa.StringArray]:
    """The ids written as lowercase UUIDs, packed into their 16 bytes, and the others as they are."""
    is_uuid = np.zeros(len(ids), bool)
    candidates = np.flatnonzero(pc.fill_null(pc.equal(pc.binary_length(ids), 36), False).to_numpy(zero_copy_only=False))
    nibbles = np.empty((0, 32), np.uint8)
    if len(candidates):
        text = pc.take(ids, pa.array(candidates), memory_pool=POOL)
        characters = np.frombuffer(text.buffers()[2], np.uint8, 36 * len(text)).reshape(-1, 36)
        nibbles = _HEX_VALUE[characters[:, _UUID_DIGITS]]
        valid = (characters[:, _UUID_HYPHENS] == ord("-")).all(axis=1) & (nibbles != _NOT_HEX).all(axis=1)
        is_uuid[candidates[valid]] = True
        nibbles = nibbles[valid]
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    uuids = pa.FixedSizeBinaryArray.from_buffers(_UUID_BYTES, len(packed), [None, pa.py_buffer(packed.tobytes())])
    return uuids, pc.filter(ids, pa.array(~is_uuid), memory_pool=POOL)


class PageBounds:
    """Stops paging that cannot end well, whatever the server claims: more pages or bytes in one read of a
    window than the settings allow; more pages than the first page's totalCount allows (plus slack); a page
    whose ids repeat the previous page's."""

    def __init__(self, endpoint: str, window: str, page_size: int, slack: int, max_pages: int, max_bytes: int):
        self.endpoint, self.window, self.page_size, self.slack = endpoint, window, page_size, slack
        self.max_pages, self.max_bytes = max_pages, max_bytes
        self.limit, self.bytes = max_pages, 0
        self._previous: Sequence[str] | None = None

    def admit(self, page: Page[object]) -> None:
        if page.number == 1 and page.total_count is not None:
            # A server may cap the page size below what was asked: its first full page says by how much.
            size = len(page.ids) if page.has_more and 0 < len(page.ids) < self.page_size else self.page_size
            self.limit = min(self.max_pages, math.ceil(page.total_count / size) + self.slack)
        if self._previous is not None and len(page.ids) and list(page.ids) == list(self._previous):
            raise PagingError(
                f"{self.endpoint} page {page.number} repeats the ids of page {page.number - 1}: "
                "the server is not advancing"
            )
        self.bytes += page.size_bytes
        if self.bytes > self.max_bytes:
            raise PagingError(
                f"{self.endpoint} {self.window}: more than {self.max_bytes / MIB:g} MB in "
                f"{page.number} pages of one read of the window (ST_API_MAX_WINDOW_MB)"
            )
        if page.has_more and page.number >= self.limit:
            if self.limit == self.max_pages:
                raise PagingError(
                    f"{self.endpoint} {self.window}: {page.number} pages, the most one read of a "
                    "window may take (ST_API_MAX_PAGES_PER_WINDOW), and the server keeps answering "
                    "hasMore"
                )
            raise PagingError(
                f"{self.endpoint} still says hasMore after {page.number} pages, more than "
                f"its totalCount allows ({self.limit} with slack)"
            )
        self._previous = page.ids


def instant(value: str) -> datetime:
    """An API timestamp as an aware datetime, so `…:00.500Z` sorts after `…:00Z`."""
    return datetime.fromisoformat(value)
