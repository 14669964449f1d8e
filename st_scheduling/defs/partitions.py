"""Daily partitions by session creation date in ST_TIMEZONE, their UTC windows for the API, and the run tags
and day keys that schedules, sensors and `make demo` use to ask for a range of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from st_scheduling.config import Settings

_settings = Settings.from_env()
TIMEZONE = _settings.timezone
LOOKBACK_DAYS = _settings.lookback_days

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date,
    timezone=TIMEZONE,
    end_offset=1,  # today's partition fills as the day goes
)
FIRST_DAY = daily_partitions.start.date().isoformat()
# Run tags that make one run cover a range of daily partitions (a single-run backfill).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# A run tagged READ: CHANGES reads the raw sessions modified since the last such read, whatever day they were
# created (the hourly refresh); untagged, a run replaces its days' sessions as the API lists them now.
READ, CHANGES = "st_scheduling/read", "changes"


def local_day(moment: datetime, offset_days: int = 0) -> str:
    """The partition key of `moment`'s day in ST_TIMEZONE, shifted by `offset_days`."""
    return (moment.astimezone(ZoneInfo(TIMEZONE)).date() + timedelta(days=offset_days)).isoformat()


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
