"""Scheduling Pro webhooks into the platform: a receiver (ASGI, `python -m st_scheduling.webhooks serve`) that
stores each signed CloudEvent durably in an inbox before answering, and the inbox the sensors in
`defs/webhooks.py` read. No Dagster here."""
