"""The API's error bodies (`ApiErrorResponse`) and the validation of query parameters that produces them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        errors: dict[str, list[str]] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ):
        super().__init__(title)
        self.status, self.title, self.errors, self.headers = status, title, errors or {}, headers or []


def problem(status: int, title: str, errors: dict[str, list[str]] | None = None) -> dict:
    return {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
        "traceId": uuid.uuid4().hex,
        "errors": errors or {},
        "data": {},
    }


def parse_datetime(name: str, raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "One or more validation errors occurred.", {name: [f"The value '{raw}' is not valid."]}
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the API reads naive times as UTC


def parse_int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "One or more validation errors occurred.", {name: [f"The value '{raw}' is not valid."]}
        ) from None
    if not low <= value <= high:
        raise ApiError(
            400,
            "One or more validation errors occurred.",
            {name: [f"The field {name} must be between {low} and {high}."]},
        )
    return value


def parse_bool(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ApiError(400, "One or more validation errors occurred.", {name: [f"The value '{raw}' is not valid."]})
