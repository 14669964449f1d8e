"""Where the inbox is, decided in one place for the receiver, the sensors and `erase`: the instance's PostgreSQL when
DAGSTER_PG_HOST is set (the instance stores its runs there, see deploy/postgres-storage.yaml), else the directory
of the settings (ST_WEBHOOK_INBOX, by default beside the warehouse).

Switching backends starts the sensors over on the new inbox: a position of the other backend reads from its first
event. Events already in the old inbox stay there, unread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from st_scheduling import config
from st_scheduling.webhooks import inbox, pg_inbox


@dataclass(frozen=True)
class Inbox:
    directory: str | None  # the file inbox, when server is None
    server: pg_inbox.Server | None

    def open(self) -> inbox.Writer:
        """The writing side, for the one receiver; InboxLocked when another holds it."""
        return pg_inbox.PostgresInbox(self.server) if self.server else inbox.FileInbox(str(self.directory))

    def read(self, position: str | None, limit: int) -> tuple[list[inbox.Stored], str | None]:
        if self.server:
            return pg_inbox.read(self.server, position, limit)
        return inbox.read(str(self.directory), position, limit)

    def erase(self, mentions: Callable[[dict], bool]) -> int:
        """Remove every stored event that `mentions`; how many."""
        if self.server:
            return pg_inbox.erase(self.server, mentions)
        return inbox.erase(str(self.directory), mentions)

    def __str__(self) -> str:
        return str(self.server) if self.server else str(self.directory)


def chosen(settings: config.WebhookSettings) -> Inbox | None:
    """The inbox of these settings and the environment; None for a MotherDuck warehouse with neither
    ST_WEBHOOK_INBOX nor DAGSTER_PG_* set."""
    server = pg_inbox.Server.from_env()
    if server is None and settings.inbox is None:
        return None
    return Inbox(settings.inbox, server)


def about(email: str | None, phone: str | None) -> Callable[[dict], bool]:
    """Whether an event's session is the customer's, by the rule the warehouse erases by: the session's customer
    email (trimmed, lower case) or phone (its digits). `email` and `phone` come normalised so."""

    def mentions(event: dict) -> bool:
        session = (event.get("data") or {}).get("session") or {}
        customer = session.get("customer") or {}
        if not isinstance(customer, dict):
            return False
        theirs = (
            str(customer.get("email") or "").strip().lower(),
            re.sub(r"[^0-9]", "", str(customer.get("phone") or "")),
        )
        return bool(email and theirs[0] == email) or bool(phone and theirs[1] == phone)

    return mentions
