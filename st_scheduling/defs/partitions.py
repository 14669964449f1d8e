"""Daily partitions by session creation date in ST_TIMEZONE, and their UTC windows for the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from st_scheduling.config import Settings

_settings = Settings.from_env()
TIMEZONE = _settings.timezone
LOOKBACK_DAYS = _settings.lookback_days

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date, timezone=TIMEZONE, end_offset=1  # today's partition fills as the day goes
)


def day_windows(first_key: str, last_key: str, timezone: str = TIMEZONE) -> list[tuple[datetime, datetime]]:
    """[local midnight, next local midnight) for every day from first_key to last_key, as aware datetimes."""
    zone = ZoneInfo(timezone)
    day = datetime.fromisoformat(first_key).date()
    last = datetime.fromisoformat(last_key).date()
    windows = []
    while day <= last:
        start = datetime.combine(day, datetime.min.time(), zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
        windows.append((start, end))
        day += timedelta(days=1)
    return windows
