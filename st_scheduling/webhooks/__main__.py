"""`python -m st_scheduling.webhooks serve`: the Scheduling Pro webhook receiver (one process per inbox).

Serve it behind your TLS-terminating proxy (ServiceTitan calls back over HTTPS) or bind it where the proxy
reaches it; it listens on loopback by default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta

import psycopg2
import uvicorn

from st_scheduling import config
from st_scheduling.webhooks import backend
from st_scheduling.webhooks.app import PATH, ReceiverSettings, create_app
from st_scheduling.webhooks.inbox import InboxLocked


def receiver_settings(settings: config.WebhookSettings) -> ReceiverSettings:
    return ReceiverSettings(
        key=config.webhook_key(),
        signature_header=settings.signature_header,
        signature_format=settings.signature_format,
        max_body_bytes=settings.max_body_kb * 1024,
        max_age=timedelta(hours=settings.max_age_hours),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m st_scheduling.webhooks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="receive Scheduling Pro webhooks into the inbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8780)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        webhooks = config.Settings.from_env().webhooks
    except config.SettingsError as err:
        sys.exit(f"st_scheduling.config.SettingsError: {err}")
    where = backend.chosen(webhooks)
    if where is None:
        sys.exit(
            "the warehouse is a MotherDuck database: set ST_WEBHOOK_INBOX to the inbox directory, or DAGSTER_PG_* "
            "to keep the inbox in the instance's PostgreSQL"
        )
    settings = receiver_settings(webhooks)
    try:
        inbox = where.open()
    except InboxLocked as err:
        sys.exit(str(err))
    except psycopg2.Error as err:  # psycopg2 names the host and user when it fails, never the password
        sys.exit(f"cannot open the inbox in {where}: {type(err).__name__}: {str(err).strip()}")
    log = logging.getLogger("st_scheduling.webhooks")
    log.info("receiving at http://%s:%s%s into %s (%d events stored)", args.host, args.port, PATH, where, len(inbox))
    if settings.key is None:
        log.warning(
            "%s is not set: unsigned events are accepted; set it to the key of ServiceTitan's developer portal",
            config.WEBHOOK_KEY,
        )
    # No access log: the receiver's own line per delivery says what happened without the client's query string.
    try:
        uvicorn.run(create_app(settings, inbox), host=args.host, port=args.port, access_log=False, log_level="info")
    finally:
        inbox.close()


if __name__ == "__main__":
    main()
