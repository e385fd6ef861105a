"""The one check of a 5-field cron expression (UTC), shared by `resources.jobs` schedules and
`resources.feature_tables` refresh schedules, so both refuse the same expressions the same way."""

from __future__ import annotations


def cron_problem(expr: str) -> str | None:
    """Why a 5-field cron expression is invalid, or None."""
    from croniter import croniter

    if len(expr.split()) != 5:
        return f"bad cron {expr!r}: expected 5 fields (minute hour day month weekday)"
    if not croniter.is_valid(expr):
        return f"bad cron {expr!r}: not a valid cron expression"
    return None
