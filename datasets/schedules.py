"""How often a refresh schedule (a five-field cron expression) runs."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

MINUTES_PER_DAY = 24 * 60


def shortest_gap_minutes(schedule: Any) -> int | None:
    """The fewest minutes between two runs of a celery ``crontab``; None if it runs once a day
    at most.

    Within a day the runs are every (hour, minute) pair; across midnight the
    gap from the last run to the next day's first counts only when two
    consecutive days both run (celery needs day of month, month and day of
    week to match). Four years of days cover every calendar case.
    """
    times = sorted(h * 60 + m for h in schedule.hour for m in schedule.minute)
    if len(times) < 2:
        return None
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    if _runs_on_consecutive_days(schedule):
        gaps.append(MINUTES_PER_DAY - times[-1] + times[0])
    return min(gaps)


def _runs_on(schedule: Any, day: date) -> bool:
    return (
        day.day in schedule.day_of_month
        and day.month in schedule.month_of_year
        and day.isoweekday() % 7 in schedule.day_of_week
    )


def _runs_on_consecutive_days(schedule: Any) -> bool:
    day, previous = date(2024, 1, 1), False
    for _ in range(4 * 366):
        runs = _runs_on(schedule, day)
        if runs and previous:
            return True
        day, previous = day + timedelta(days=1), runs
    return False
