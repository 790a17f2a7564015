"""Specification of bloxserver.cron: Unix cron in, EventBridge Scheduler cron(...) out, fire times as AWS runs them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from bloxserver.cron import (
    CronError,
    aws_cron_fire_times,
    next_aws_fire_time,
    next_fire_times,
    parse_aws_cron,
    parse_unix_cron,
    to_aws_cron,
    validate_timezone,
)

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local_times(times: list[datetime], zone: str) -> list[str]:
    return [t.astimezone(ZoneInfo(zone)).isoformat() for t in times]


# --- Translation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix", "aws"),
    [
        ("0 9 * * *", "cron(0 9 * * ? *)"),
        ("30 8 * * 1-5", "cron(30 8 ? * 2-6 *)"),
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("* * * * *", "cron(* * * * ? *)"),
        ("0 12 * JAN,JUL MON", "cron(0 12 ? 1,7 2 *)"),
        ("0 12 * jan-mar sun", "cron(0 12 ? 1-3 1 *)"),
        ("*/15 9-17 * * MON-FRI", "cron(0/15 9-17 ? * 2-6 *)"),
        ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
        ("0 0 * * 7", "cron(0 0 ? * 1 *)"),
        ("0 0 * * 6,7", "cron(0 0 ? * 1,7 *)"),
        ("0 0 * * 5-7", "cron(0 0 ? * 1,6,7 *)"),
        ("0 0 * * */2", "cron(0 0 ? * 1,3,5,7 *)"),
        ("0 0 * * 1-5/2", "cron(0 0 ? * 2,4,6 *)"),
        ("0 0 * * 0-6", "cron(0 0 ? * * *)"),
        ("0 0 */2 */3 *", "cron(0 0 1/2 1/3 ? *)"),
        ("5-50/15 */2 * * *", "cron(5/15 0/2 * * ? *)"),
        ("1-10/2 0 * * *", "cron(1,3,5,7,9 0 * * ? *)"),
        ("10/20 3,4,5,9 15 * *", "cron(10/20 3-5,9 15 * ? *)"),
    ],
)
def test_given_a_unix_expression_when_translated_then_aws_form_runs_the_same_schedule(unix: str, aws: str) -> None:
    assert to_aws_cron(unix) == aws


def test_given_a_range_with_equal_ends_when_translated_then_it_means_that_one_value() -> None:
    # as in cron(5) ("5-5" is hour 5); croniter deliberately reads it as the whole field
    assert to_aws_cron("0 5-5 * * *") == "cron(0 5 * * ? *)"


def test_given_both_day_fields_restricted_when_translated_then_refused_with_advice() -> None:
    with pytest.raises(CronError) as error:
        to_aws_cron("0 9 1 * MON")
    assert error.value.field == "cron"
    assert "AWS cannot run a schedule that restricts both day-of-month and day-of-week" in error.value.message
    assert "two triggers" in error.value.message


@pytest.mark.parametrize("expr", ["0 9 1-31 * 1", "0 9 */1 * 0-6"])
def test_given_day_fields_written_other_than_star_when_translated_then_both_count_as_restricted(expr: str) -> None:
    # cron ORs the day fields whenever neither is written as `*`, even if one covers every day
    with pytest.raises(CronError, match="both day-of-month and day-of-week"):
        to_aws_cron(expr)


# --- Validation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message_part"),
    [
        ("0 9 * *", "expected 5 fields"),
        ("0 9 * * * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("cron(0 9 * * ? *)", "not an AWS cron(...) expression"),
        ("60 9 * * *", "minute field: 60 is out of range 0-59"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 9 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("0 9 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("0 9 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 9 * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("*/0 9 * * *", "minute field: step in '*/0' must be a number from 1 to 59"),
        ("*/x 9 * * *", "minute field: step in '*/x'"),
        ("1-10/ 9 * * *", "minute field: step in '1-10/'"),
        ("0 */24 * * *", "hour field: step in '*/24' must be a number from 1 to 23"),
        ("0 9 * FOO *", "month field: unknown value 'FOO'"),
        ("0 9 * JANUARY *", "month field: unknown value 'JANUARY'"),
        ("0 9 * * FUNDAY", "day-of-week field: unknown value 'FUNDAY'"),
        ("0 MON * * *", "hour field: 'MON' is not a number"),
        ("0 17-9 * * *", "hour field: range '17-9' runs backwards"),
        ("0 9 * * 5-0", "day-of-week field: range '5-0' runs backwards"),
        ("0 9 * * ?", "day-of-week field: cannot read '?'"),
        ("0 9 1,,2 * *", "day-of-month field: cannot read ''"),
        ("0 9 30 2 *", "never run"),
        ("0 9 ² * *", "day-of-month field: '²' is not a number"),
    ],
)
def test_given_an_invalid_expression_when_parsed_then_cron_error_names_the_problem(
    expr: str, message_part: str
) -> None:
    with pytest.raises(CronError) as error:
        parse_unix_cron(expr)
    assert error.value.field == "cron"
    assert message_part in error.value.message


def test_given_a_valid_expression_when_parsed_then_values_are_expanded_with_sunday_as_zero() -> None:
    parsed = parse_unix_cron("0,30 9-11 * feb-apr SAT-7")
    assert parsed.minutes == {0, 30}
    assert parsed.hours == {9, 10, 11}
    assert parsed.months == {2, 3, 4}
    assert parsed.days_of_week == {6, 0}
    assert (parsed.day_of_month_restricted, parsed.day_of_week_restricted) == (False, True)


def test_given_an_iana_zone_when_validated_then_its_zoneinfo_is_returned() -> None:
    assert validate_timezone("Australia/Lord_Howe") == ZoneInfo("Australia/Lord_Howe")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "europe/berlin", "", "Factory", "../etc/passwd", "+02:00", None])
def test_given_a_non_iana_zone_when_validated_then_cron_error_on_timezone(name: str) -> None:
    with pytest.raises(CronError) as error:
        validate_timezone(name)
    assert error.value.field == "timezone"
    assert "is not an IANA time zone name" in error.value.message


@pytest.mark.parametrize(
    ("aws", "message_part"),
    [
        ("0 9 * * ? *", "expected an AWS expression"),
        ("cron(0 9 * * *)", "expected 6 fields"),
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * */2 *)", "day-of-week field: steps ('/') are not allowed here"),
        ("cron(0 9 ? * 0 *)", "day-of-week field: 0 is out of range 1-7"),
        ("cron(0 9 ? * 2#6 *)", "needs a week number 1-5"),
        ("cron(0 9 * * ? 2200)", "year field: 2200 is out of range 1970-2199"),
    ],
)
def test_given_an_invalid_aws_expression_when_parsed_then_cron_error(aws: str, message_part: str) -> None:
    with pytest.raises(CronError, match=re.escape(message_part)):
        parse_aws_cron(aws)


# --- AWS evaluation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aws", "expected_days"),
    [
        ("cron(0 12 L * ? *)", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        # 2026-02-14 is a Saturday -> Friday 13th; 2026-03-01 is a Sunday and 1W stays in March -> Monday 2nd
        ("cron(0 12 14W 2 ? *)", ["2026-02-13", "2027-02-15"]),
        ("cron(0 12 1W 3 ? *)", ["2026-03-02", "2027-03-01"]),
        ("cron(0 12 ? * MON#1 *)", ["2026-01-05", "2026-02-02", "2026-03-02", "2026-04-06"]),
        ("cron(0 12 ? * 6L *)", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("cron(0 12 ? * L *)", ["2026-01-03", "2026-01-10", "2026-01-17", "2026-01-24"]),
        ("cron(0 12 29 2 ? *)", ["2028-02-29", "2032-02-29"]),
    ],
)
def test_given_aws_day_specials_when_evaluated_then_they_pick_the_documented_days(
    aws: str, expected_days: list[str]
) -> None:
    fire_times = aws_cron_fire_times(aws, "UTC", utc(2026, 1, 1), utc(2034, 1, 1))
    assert [t.date().isoformat() for t in fire_times[: len(expected_days)]] == expected_days


def test_given_a_window_when_evaluated_then_times_are_utc_strictly_after_start_and_up_to_end() -> None:
    fire_times = aws_cron_fire_times("cron(0 9 * * ? *)", "Europe/Berlin", utc(2026, 1, 5, 8), utc(2026, 1, 7, 8))
    assert fire_times == [utc(2026, 1, 6, 8), utc(2026, 1, 7, 8)]
    assert all(t.tzinfo is UTC for t in fire_times)


def test_given_a_year_of_every_minute_when_evaluated_then_each_existing_local_minute_runs_once() -> None:
    berlin_year = aws_cron_fire_times(
        "cron(* * * * ? *)", "Europe/Berlin", utc(2025, 12, 31, 22, 59), utc(2026, 12, 31, 22, 59)
    )
    # the spring-forward hour does not exist; the repeated autumn hour runs once
    assert len(berlin_year) == 365 * 24 * 60 - 60


def test_given_a_schedule_whose_years_are_over_when_asking_next_then_none() -> None:
    assert next_aws_fire_time("cron(0 0 1 1 ? 2020-2025)", "UTC", utc(2026, 1, 1)) is None
    assert next_aws_fire_time("cron(0 0 1 1 ? 2020-2027)", "UTC", utc(2026, 1, 1)) == utc(2027, 1, 1)


def test_given_a_naive_datetime_when_evaluating_then_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_aws_fire_time("cron(0 0 * * ? *)", "UTC", datetime(2026, 1, 1))


# --- DST: EventBridge Scheduler skips a nonexistent local time and runs a repeated one once, at its first occurrence.
# croniter moves the former to the first minute after the gap and runs the latter twice.


@pytest.mark.parametrize(
    ("unix", "zone", "start", "expected_local"),
    [
        (
            "30 2 * * *",
            "America/New_York",
            utc(2026, 3, 7),
            ["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 3, 28),
            ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            utc(2026, 10, 2),
            ["2026-10-03T02:15:00+10:30", "2026-10-05T02:15:00+11:00"],
        ),
        (
            "*/20 2 * * *",
            "America/New_York",
            utc(2026, 3, 8, 5),
            ["2026-03-09T02:00:00-04:00", "2026-03-09T02:20:00-04:00"],
        ),
    ],
)
def test_given_a_time_in_the_spring_forward_gap_when_evaluated_then_that_day_is_skipped(
    unix: str, zone: str, start: datetime, expected_local: list[str]
) -> None:
    assert local_times(next_fire_times(unix, zone, count=2, after=start), zone) == expected_local


@pytest.mark.parametrize(
    ("unix", "zone", "start", "expected_local"),
    [
        (
            "30 1 * * *",
            "America/New_York",
            utc(2026, 10, 31, 12),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 10, 24, 12),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (
            "45 1 * * *",
            "Australia/Lord_Howe",
            utc(2026, 4, 4),
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
        ),
        (
            "*/20 1-2 * * *",
            "America/New_York",
            utc(2026, 11, 1, 4),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:20:00-04:00",
                "2026-11-01T01:40:00-04:00",
                "2026-11-01T02:00:00-05:00",
            ],
        ),
    ],
)
def test_given_a_time_repeated_by_fall_back_when_evaluated_then_it_runs_once_at_the_first_occurrence(
    unix: str, zone: str, start: datetime, expected_local: list[str]
) -> None:
    fire_times = next_fire_times(unix, zone, count=len(expected_local), after=start)
    assert local_times(fire_times, zone) == expected_local


def test_given_after_inside_the_repeated_hour_when_asking_next_then_the_repeat_is_not_run() -> None:
    # 01:10 EST is in New York's second pass through 01:00-02:00; 01:30 already ran as 01:30 EDT
    after = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=ZoneInfo("America/New_York"))
    assert local_times(next_fire_times("30 1 * * *", "America/New_York", 1, after), "America/New_York") == [
        "2026-11-02T01:30:00-05:00"
    ]


# --- next_fire_times -------------------------------------------------------------------------------------------


def test_given_no_after_when_asking_next_runs_then_they_start_from_now() -> None:
    before = datetime.now(UTC)
    fire_times = next_fire_times("*/5 * * * *", "Asia/Kolkata", count=3)
    assert len(fire_times) == 3
    assert before < fire_times[0] < fire_times[1] < fire_times[2]
    assert fire_times[1] - fire_times[0] == timedelta(minutes=5)


def test_given_a_count_when_asking_next_runs_then_exactly_that_many_in_order() -> None:
    fire_times = next_fire_times("30 8 * * 1-5", "America/New_York", count=6, after=utc(2026, 1, 1))
    assert local_times(fire_times, "America/New_York") == [
        "2026-01-01T08:30:00-05:00",
        "2026-01-02T08:30:00-05:00",
        "2026-01-05T08:30:00-05:00",
        "2026-01-06T08:30:00-05:00",
        "2026-01-07T08:30:00-05:00",
        "2026-01-08T08:30:00-05:00",
    ]


def test_given_bad_input_when_asking_next_runs_then_cron_error_names_the_field() -> None:
    with pytest.raises(CronError) as bad_cron:
        next_fire_times("0 9 1 * MON", "UTC")
    with pytest.raises(CronError) as bad_zone:
        next_fire_times("0 9 * * *", "Moon/Base")
    assert (bad_cron.value.field, bad_zone.value.field) == ("cron", "timezone")


# --- Agreement with croniter -------------------------------------------------------------------------------------


def croniter_runs_under_eventbridge_dst_rules(
    unix: str, zone: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """croniter's fire times in (start, end], minus what EventBridge Scheduler does not run.

    Dropped: times croniter moved out of a spring-forward gap (their wall time does not match the expression)
    and second occurrences of a repeated fall-back wall time.
    """
    runs: list[datetime] = []
    schedule = croniter(unix, start.astimezone(zone))
    while (run := schedule.get_next(datetime)) <= end:
        local = run.astimezone(zone)
        # a moved time lands right after the clocks change; checking only there keeps croniter.match off the hot path
        just_after_change = (run - timedelta(hours=2)).astimezone(zone).utcoffset() != local.utcoffset()
        moved_out_of_gap = just_after_change and not croniter.match(unix, local.replace(tzinfo=None))
        repeat = local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
        instant = run.astimezone(UTC)
        if not moved_out_of_gap and not repeat and (not runs or runs[-1] != instant):
            runs.append(instant)
    return runs


@cache
def offset_changes_2026(zone: ZoneInfo) -> list[datetime]:
    """For each 2026 offset change, the first whole UTC hour on the new offset; mid-March and mid-October if none."""
    hours = [utc(2026, 1, 1) + timedelta(hours=h) for h in range(365 * 24)]
    offsets = [hour.astimezone(zone).utcoffset() for hour in hours]
    changes = [hours[i] for i in range(1, len(hours)) if offsets[i] != offsets[i - 1]]
    return changes or [utc(2026, 3, 15), utc(2026, 10, 15)]


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize(
    "unix",
    ["0 2 * * *", "30 1 * * *", "15,45 0-3 * * *", "*/15 * * * *", "* * * * *", "0 */2 * * SUN", "30 2 1-10 * *"],
)
def test_given_each_2026_dst_transition_when_evaluated_then_matches_croniter_under_eventbridge_dst_rules(
    zone_name: str, unix: str
) -> None:
    zone = ZoneInfo(zone_name)
    for change in offset_changes_2026(zone):
        start, end = change - timedelta(days=1, minutes=7), change + timedelta(days=1)
        expected = croniter_runs_under_eventbridge_dst_rules(unix, zone, start, end)
        assert aws_cron_fire_times(to_aws_cron(unix), zone_name, start, end) == expected


MONTH_NAMES = dict(enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1))
DAY_NAMES = dict(enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]))


def _token(draw: st.DrawFn, low: int, high: int, names: dict[int, str]) -> tuple[int, str]:
    value = draw(st.integers(low, high))
    if value in names and draw(st.booleans()):
        return value, draw(st.sampled_from([names[value], names[value].lower(), names[value].capitalize()]))
    return value, str(value)


@st.composite
def field_item(draw: st.DrawFn, low: int, high: int, star_high: int, names: dict[int, str]) -> str:
    kind = draw(st.sampled_from(["value", "range", "star_step", "range_step", "start_step"]))
    step = draw(st.integers(1, high - low))
    if kind == "value":
        return _token(draw, low, high, names)[1]
    if kind == "star_step":
        return f"*/{step}"
    if kind == "start_step":
        return f"{_token(draw, low, star_high, names)[1]}/{step}"
    # croniter deliberately reads a range with equal ends ("5-5") as the whole field; cron and we read it as one
    # value (see the explicit test), so the comparison uses ranges with distinct ends only
    first, first_text = _token(draw, low, high - 1, names)
    _, last_text = _token(draw, first + 1, high, names)
    return f"{first_text}-{last_text}" + (f"/{step}" if kind == "range_step" else "")


@st.composite
def cron_field(
    draw: st.DrawFn, low: int, high: int, star_high: int | None = None, names: dict[int, str] | None = None
) -> str:
    if draw(st.integers(0, 3)) == 0:
        return "*"
    item = field_item(low, high, high if star_high is None else star_high, names or {})
    return ",".join(draw(st.lists(item, min_size=1, max_size=3)))


@st.composite
def unix_expression(draw: st.DrawFn) -> str:
    """Valid 5-field expressions restricting at most one day field."""
    restricted = draw(st.sampled_from(["neither", "day-of-month", "day-of-week"]))
    day_of_month = draw(cron_field(1, 31).filter(lambda f: f != "*")) if restricted == "day-of-month" else "*"
    day_of_week = (
        draw(cron_field(0, 7, star_high=6, names=DAY_NAMES).filter(lambda f: f != "*"))
        if restricted == "day-of-week"
        else "*"
    )
    minute, hour, month = draw(cron_field(0, 59)), draw(cron_field(0, 23)), draw(cron_field(1, 12, names=MONTH_NAMES))
    return f"{minute} {hour} {day_of_month} {month} {day_of_week}"


def fires_per_day(unix: str) -> int:
    minutes, hours = croniter(unix).expanded[:2]
    return (60 if minutes == ["*"] else len(minutes)) * (24 if hours == ["*"] else len(hours))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unix=unix_expression(), zone_name=st.sampled_from(ZONES), data=st.data())
def test_property_aws_translation_runs_when_croniter_says_except_eventbridge_dst_rules(
    unix: str, zone_name: str, data: st.DataObject
) -> None:
    try:
        aws = to_aws_cron(unix)
    except CronError as error:
        if "never run" not in error.message:
            raise
        reject()
    zone = ZoneInfo(zone_name)
    # all of 2026 for schedules running at most twice a day; denser ones get about 1,000 runs' worth of days
    # around one of the zone's 2026 transitions, so the whole file stays fast
    if fires_per_day(unix) <= 2:
        start, window_days = datetime(2026, 1, 1, tzinfo=zone), 365
    else:
        window_days = max(2, 1000 // fires_per_day(unix))
        change = data.draw(st.sampled_from(offset_changes_2026(zone)), label="transition")
        start = change - timedelta(days=window_days / 2)
    start += timedelta(minutes=data.draw(st.integers(0, 24 * 60), label="start offset minutes"))
    end = start + timedelta(days=window_days)
    assert aws_cron_fire_times(aws, zone_name, start, end) == croniter_runs_under_eventbridge_dst_rules(
        unix, zone, start, end
    )
