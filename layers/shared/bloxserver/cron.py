"""Cron schedules for triggers: users write Unix cron, AWS EventBridge Scheduler runs it.

Users give a standard 5-field Unix expression and an IANA time zone. `to_aws_cron` translates it into the 6-field
`cron(...)` form EventBridge Scheduler accepts, and `aws_cron_fire_times` evaluates that AWS form the way the
Scheduler does, so the times we show (`next_fire_times`) and the times the local scheduler uses are the times AWS
will run.

AWS cron semantics (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html):
fields `min hour day-of-month month day-of-week year`; day-of-week is 1-7 = SUN-SAT; exactly one day field is `?`;
`/` is allowed in every field except day-of-week; `L` and `nW` in day-of-month; `L`, `nL` and `n#k` in day-of-week.

Daylight saving time, as EventBridge Scheduler documents it (schedule-types.html, "Daylight savings time on
EventBridge Scheduler", and https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst):
- a local time that does not exist because clocks spring forward is skipped, not moved;
- a local time that occurs twice because clocks fall back "runs only once and doesn't repeat its invocation".
  AWS does not name the occurrence; "doesn't repeat" reads as: the first occurrence runs and the repeat is
  dropped, so we fire at the first (earlier, pre-transition) instant. This applies to every minute of the
  repeated interval, so `* * * * *` is silent during the second pass.
croniter differs on both (it moves a skipped time to the first minute after the gap and fires a repeated time
on both passes); we follow AWS.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from itertools import islice
from typing import Protocol
from zoneinfo import ZoneInfo

from bloxserver.errors import ValidationFailed

# EventBridge accepts years 1970-2199, so every schedule ends; this bounds the search for the next run.
AWS_MAX_YEAR = 2199
AWS_MIN_YEAR = 1970

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_MONTH_NAMES = {name: number for number, name in enumerate(_MONTHS, start=1)}
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_UNIX_DAY_NAMES = {name: number for number, name in enumerate(_DAY_NAMES)}
_AWS_DAY_NAMES = {name: number for number, name in enumerate(_DAY_NAMES, start=1)}

_UNIX_FIELD_ORDER = "minute hour day-of-month month day-of-week"
_AWS_FIELD_ORDER = "minute hour day-of-month month day-of-week year"


class CronError(ValidationFailed):
    """A cron expression or time zone a user gave is not usable; `field` names the input that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, {"field": field})
        self.field = field


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: Mapping[str, int]
    # `*` and open-ended steps (`n/step`) stop here; only Unix day-of-week differs (7 is an alias of 0).
    star_high: int
    allows_step: bool = True


_MINUTE = _FieldSpec("minute", 0, 59, {}, 59)
_HOUR = _FieldSpec("hour", 0, 23, {}, 23)
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31, {}, 31)
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES, 12)
_UNIX_DAY_OF_WEEK = _FieldSpec("day-of-week", 0, 7, _UNIX_DAY_NAMES, 6)
_AWS_DAY_OF_WEEK = _FieldSpec("day-of-week", 1, 7, _AWS_DAY_NAMES, 7, allows_step=False)
_YEAR = _FieldSpec("year", AWS_MIN_YEAR, AWS_MAX_YEAR, {}, AWS_MAX_YEAR)

# More than any real expression needs (every value of every field listed takes about 350), and numbers stay
# short enough for int() (which refuses more than 4300 digits).
MAX_UNIX_CRON_CHARS = 512
_ITEM = re.compile(r"(?:(?P<star>\*)|(?P<start>\w+)(?:-(?P<end>\w+))?)(?:/(?P<step>\w*))?")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _value(text: str, spec: _FieldSpec) -> int:
    if _is_number(text):
        number = int(text)
    elif text.upper() in spec.names:
        return spec.names[text.upper()]
    elif spec.names:
        raise CronError("cron", f"{spec.name} field: unknown value {text!r} (use numbers or names like "
                                f"{', '.join(list(spec.names)[:3])})")
    else:
        raise CronError("cron", f"{spec.name} field: {text!r} is not a number")
    if not spec.low <= number <= spec.high:
        raise CronError("cron", f"{spec.name} field: {number} is out of range {spec.low}-{spec.high}")
    return number


def _parse_list(text: str, spec: _FieldSpec) -> frozenset[int]:
    """Values of a list field: items `*`, `n`, `a-b`, each optionally with `/step`, separated by commas."""
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise CronError("cron", f"{spec.name} field: cannot read {item!r}")
        if match["star"]:
            start, end = spec.low, spec.star_high
        else:
            start = _value(match["start"], spec)
            if match["end"] is not None:
                end = _value(match["end"], spec)
            elif match["step"] is not None:
                end = spec.star_high
            else:
                end = start
            if start > end:
                raise CronError("cron", f"{spec.name} field: range {item!r} runs backwards")
        step = 1
        if match["step"] is not None:
            if not spec.allows_step:
                raise CronError("cron", f"{spec.name} field: steps ('/') are not allowed here")
            if not _is_number(match["step"]) or not 1 <= int(match["step"]) <= spec.high - spec.low:
                raise CronError("cron", f"{spec.name} field: step in {item!r} must be a number from 1 to "
                                        f"{spec.high - spec.low}")
            step = int(match["step"])
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class UnixCron:
    """A validated 5-field Unix cron expression; day-of-week uses 0-6 with Sunday = 0."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    # Cron decides between AND and OR of the day fields by whether a field is written as `*`, not by its values.
    day_of_month_restricted: bool
    day_of_week_restricted: bool


def parse_unix_cron(expr: str) -> UnixCron:
    """Validate a 5-field Unix cron expression (lists, ranges, steps, JAN-DEC, SUN-SAT, day-of-week 0-7)."""
    if not isinstance(expr, str):
        raise CronError("cron", "the cron expression must be a string")
    if len(expr) > MAX_UNIX_CRON_CHARS:
        raise CronError("cron", f"the cron expression must be at most {MAX_UNIX_CRON_CHARS} characters")
    if expr.strip().lower().startswith("cron("):
        raise CronError("cron", f"expected a 5-field Unix cron expression ({_UNIX_FIELD_ORDER}), "
                                "not an AWS cron(...) expression")
    fields = expr.split()
    if len(fields) != 5:
        raise CronError("cron", f"expected 5 fields ({_UNIX_FIELD_ORDER}), got {len(fields)}")
    minute, hour, day_of_month, month, day_of_week = fields
    parsed = UnixCron(
        minutes=_parse_list(minute, _MINUTE),
        hours=_parse_list(hour, _HOUR),
        days_of_month=_parse_list(day_of_month, _DAY_OF_MONTH),
        months=_parse_list(month, _MONTH),
        days_of_week=frozenset(day % 7 for day in _parse_list(day_of_week, _UNIX_DAY_OF_WEEK)),
        day_of_month_restricted=day_of_month != "*",
        day_of_week_restricted=day_of_week != "*",
    )
    if parsed.day_of_month_restricted and not parsed.day_of_week_restricted:
        longest_month = max(calendar.monthrange(2024, month)[1] for month in parsed.months)  # 2024: leap year
        if min(parsed.days_of_month) > longest_month:
            raise CronError("cron", f"day-of-month {min(parsed.days_of_month)} never occurs in the chosen "
                                    "months, so this schedule would never run")
    return parsed


@cache
def _iana_zone_names() -> frozenset[str]:
    # The tzdata package's list, not the host's /usr/share/zoneinfo, so the answer is the same on Lambda and
    # laptops. "Factory" is a placeholder zone, not a place.
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


def validate_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA time zone name such as "Europe/Berlin"; CronError(field="timezone") otherwise."""
    if not isinstance(name, str) or name not in _iana_zone_names():
        raise CronError("timezone", f"{name!r} is not an IANA time zone name (for example 'Europe/Berlin' or "
                                    "'UTC')")
    return ZoneInfo(name)


def _render(values: frozenset[int], low: int, high: int, allows_step: bool) -> str:
    """The shortest exact AWS spelling of a set of numbers: `*`, `start/step`, or a list of numbers and ranges."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if allows_step and len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if ordered == list(range(ordered[0], high + 1, step)):
            return f"{ordered[0]}/{step}"
    parts: list[str] = []
    run_start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        if previous - run_start >= 2:
            parts.append(f"{run_start}-{previous}")
        else:
            parts.extend(str(number) for number in range(run_start, previous + 1))
        if value is not None:
            run_start = previous = value
    return ",".join(parts)


def to_aws_cron(expr: str) -> str:
    """Translate a 5-field Unix cron expression into the EventBridge Scheduler `cron(...)` form."""
    unix = parse_unix_cron(expr)
    if unix.day_of_month_restricted and unix.day_of_week_restricted:
        raise CronError("cron", "AWS cannot run a schedule that restricts both day-of-month and day-of-week "
                                "(cron runs it when either matches); use two triggers, one per day field")
    day_of_month = day_of_week = "?"
    if unix.day_of_week_restricted:
        aws_days = frozenset(day + 1 for day in unix.days_of_week)  # Unix 0 = Sunday, AWS 1 = SUN
        day_of_week = _render(aws_days, 1, 7, allows_step=False)
    else:
        day_of_month = _render(unix.days_of_month, 1, 31, allows_step=True)
    fields = [
        _render(unix.minutes, 0, 59, allows_step=True),
        _render(unix.hours, 0, 23, allows_step=True),
        day_of_month,
        _render(unix.months, 1, 12, allows_step=True),
        day_of_week,
        "*",
    ]
    return f"cron({' '.join(fields)})"


class _DayRule(Protocol):
    def days_in(self, year: int, month: int) -> list[int]: ...


def _aws_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1  # Python: Monday = 0; AWS: SUN = 1 ... SAT = 7


@dataclass(frozen=True)
class _DaysOfMonth:
    days: frozenset[int]

    def days_in(self, year: int, month: int) -> list[int]:
        month_length = calendar.monthrange(year, month)[1]
        return sorted(day for day in self.days if day <= month_length)


@dataclass(frozen=True)
class _LastDayOfMonth:
    def days_in(self, year: int, month: int) -> list[int]:
        return [calendar.monthrange(year, month)[1]]


@dataclass(frozen=True)
class _NearestWeekday:
    """`nW`: the weekday nearest day n, staying inside the month."""

    day: int

    def days_in(self, year: int, month: int) -> list[int]:
        month_length = calendar.monthrange(year, month)[1]
        if self.day > month_length:
            return []
        weekday = date(year, month, self.day).weekday()
        if weekday == 5:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
            return [self.day - 1] if self.day > 1 else [self.day + 2]
        if weekday == 6:  # Sunday: Monday after, or Friday before when it is the last day
            return [self.day + 1] if self.day < month_length else [self.day - 2]
        return [self.day]


@dataclass(frozen=True)
class _DaysOfWeek:
    days: frozenset[int]  # AWS numbering, 1 = SUN

    def days_in(self, year: int, month: int) -> list[int]:
        month_length = calendar.monthrange(year, month)[1]
        return [day for day in range(1, month_length + 1) if _aws_weekday(date(year, month, day)) in self.days]


@dataclass(frozen=True)
class _LastWeekdayOfMonth:
    """`nL`: the last weekday n of the month."""

    weekday: int

    def days_in(self, year: int, month: int) -> list[int]:
        return _DaysOfWeek(frozenset({self.weekday})).days_in(year, month)[-1:]


@dataclass(frozen=True)
class _NthWeekdayOfMonth:
    """`n#k`: the k-th weekday n of the month, if the month has one."""

    weekday: int
    nth: int

    def days_in(self, year: int, month: int) -> list[int]:
        matching = _DaysOfWeek(frozenset({self.weekday})).days_in(year, month)
        return matching[self.nth - 1 : self.nth]


@dataclass(frozen=True)
class AwsCron:
    """A validated EventBridge Scheduler `cron(...)` expression, ready to evaluate."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]


def _parse_aws_day_of_month(text: str) -> _DayRule:
    if text.upper() == "L":
        return _LastDayOfMonth()
    if text.upper().endswith("W"):
        return _NearestWeekday(_value(text[:-1], _DAY_OF_MONTH))
    return _DaysOfMonth(_parse_list(text, _DAY_OF_MONTH))


def _parse_aws_day_of_week(text: str) -> _DayRule:
    if text.upper() == "L":
        return _DaysOfWeek(frozenset({7}))  # alone, L is the last day of the week: SAT
    if "#" in text:
        weekday, _, nth = text.partition("#")
        if not _is_number(nth) or not 1 <= int(nth) <= 5:
            raise CronError("cron", f"day-of-week field: {text!r} needs a week number 1-5 after '#'")
        return _NthWeekdayOfMonth(_value(weekday, _AWS_DAY_OF_WEEK), int(nth))
    if len(text) > 1 and text.upper().endswith("L"):
        return _LastWeekdayOfMonth(_value(text[:-1], _AWS_DAY_OF_WEEK))
    return _DaysOfWeek(_parse_list(text, _AWS_DAY_OF_WEEK))


def parse_aws_cron(aws_expr: str) -> AwsCron:
    """Validate an EventBridge Scheduler `cron(min hour day-of-month month day-of-week year)` expression."""
    match = re.fullmatch(r"\s*cron\((?P<fields>[^()]*)\)\s*", aws_expr) if isinstance(aws_expr, str) else None
    if match is None:
        raise CronError("cron", f"expected an AWS expression 'cron({_AWS_FIELD_ORDER})'")
    fields = match["fields"].split()
    if len(fields) != 6:
        raise CronError("cron", f"expected 6 fields ({_AWS_FIELD_ORDER}), got {len(fields)}")
    minute, hour, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise CronError("cron", "exactly one of day-of-month and day-of-week must be '?'")
    days = _parse_aws_day_of_week(day_of_week) if day_of_month == "?" else _parse_aws_day_of_month(day_of_month)
    return AwsCron(
        minutes=tuple(sorted(_parse_list(minute, _MINUTE))),
        hours=tuple(sorted(_parse_list(hour, _HOUR))),
        days=days,
        months=tuple(sorted(_parse_list(month, _MONTH))),
        years=tuple(sorted(_parse_list(year, _YEAR))),
    )


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _iter_fire_times(schedule: AwsCron, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after `after`, in order, as UTC datetimes.

    Walks matching days, then hours, then minutes in local wall-clock time. Mapping each wall time to its first
    occurrence keeps the instants increasing, so the walk can start on the local date of `after`.
    """
    first_day = after.astimezone(zone).date()
    for year in schedule.years:
        if year < first_day.year:
            continue
        for month in schedule.months:
            if (year, month) < (first_day.year, first_day.month):
                continue
            for day in schedule.days.days_in(year, month):
                if date(year, month, day) < first_day:
                    continue
                for hour in schedule.hours:
                    for minute in schedule.minutes:
                        wall = datetime(year, month, day, hour, minute, tzinfo=zone)  # fold=0: first occurrence
                        offset = wall.utcoffset()
                        if offset < wall.replace(fold=1).utcoffset():
                            continue  # clocks sprang forward over this wall time: it does not exist
                        instant = (wall.replace(tzinfo=None) - offset).replace(tzinfo=UTC)
                        if instant > after:
                            yield instant


def aws_cron_fire_times(aws_expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every time EventBridge Scheduler runs `aws_expr` in zone `tz`, strictly after `start` and up to `end`."""
    schedule = parse_aws_cron(aws_expr)
    zone = validate_timezone(tz)
    start_utc, end_utc = _require_aware("start", start), _require_aware("end", end)
    fire_times: list[datetime] = []
    for instant in _iter_fire_times(schedule, zone, start_utc):
        if instant > end_utc:
            break
        fire_times.append(instant)
    return fire_times


def next_aws_fire_time(aws_expr: str, tz: str, after: datetime) -> datetime | None:
    """The first time EventBridge Scheduler runs `aws_expr` in zone `tz` after `after`; None if it never will."""
    schedule = parse_aws_cron(aws_expr)
    zone = validate_timezone(tz)
    return next(_iter_fire_times(schedule, zone, _require_aware("after", after)), None)


def next_fire_times(unix_expr: str, tz: str, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next `count` runs of a Unix cron trigger, as AWS will run them (via `to_aws_cron`), in UTC."""
    if count < 0:
        raise ValueError("count must not be negative")
    schedule = parse_aws_cron(to_aws_cron(unix_expr))
    zone = validate_timezone(tz)
    after_utc = datetime.now(UTC) if after is None else _require_aware("after", after)
    return list(islice(_iter_fire_times(schedule, zone, after_utc), count))
