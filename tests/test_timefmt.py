from datetime import UTC, datetime

from backend.timefmt import age

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def test_age_picks_the_largest_whole_unit():
    assert age("2026-11-26T11:59:18+00:00", NOW) == "42 s"
    assert age("2026-11-26T11:55:00+00:00", NOW) == "5 min"
    assert age("2026-11-26T09:00:00", NOW) == "3 h"  # no zone: taken as UTC
    assert age("2026-11-24T12:00:00+00:00", NOW) == "2 d"


def test_age_of_garbage_or_the_future_is_harmless():
    assert age("not a time", NOW) == ""
    assert age("2026-11-26T13:00:00+00:00", NOW) == "0 s"


def friendly(iso_time, now=NOW, **options):
    from backend.timefmt import friendly_time

    return friendly_time(iso_time, now, **options)


def test_a_friendly_time_says_how_recent_in_words_a_stakeholder_reads():
    assert friendly("2026-11-26T11:59:30+00:00") == "just now"
    assert friendly("2026-11-26T11:55:00+00:00") == "5 min ago"
    assert friendly("2026-11-26T10:02:00+00:00") == "today 10:02"
    assert friendly("2026-11-26T00:00:00") == "today 00:00"  # no zone: taken as UTC
    assert friendly("2026-11-25T09:10:00+00:00") == "yesterday 09:10"
    assert friendly("2026-11-25T23:59:00+00:00") == "yesterday 23:59"  # a calendar day, not 24 h
    assert friendly("2026-11-23T12:00:00+00:00") == "3 days ago"
    assert friendly("2026-11-20T08:00:00+00:00") == "6 days ago"
    assert friendly("2026-11-19T12:00:00+00:00") == "19 Nov 2026"  # a week or more: the date
    assert friendly("2025-02-03T12:00:00+00:00") == "3 Feb 2025"


def test_a_friendly_time_is_told_in_the_zone_of_now():
    from datetime import timedelta, timezone

    berlin_winter = timezone(timedelta(hours=1), "CET")
    now = NOW.astimezone(berlin_winter)  # 13:00 there
    assert friendly("2026-11-26T10:02:00+00:00", now) == "today 11:02"
    assert friendly("2026-11-25T23:30:00+00:00", now) == "today 00:30"  # still yesterday in UTC
    assert friendly("2026-11-26T11:02:00+00:00", now, absolute=True) == "26 Nov 2026, 12:02 CET"


def test_an_absolute_friendly_time_never_goes_stale():
    assert friendly("2026-11-26T10:02:00+00:00", absolute=True) == "26 Nov 2026, 10:02 UTC"
    assert friendly("2026-11-02T09:05:00", absolute=True) == "2 Nov 2026, 09:05 UTC"


def test_a_friendly_time_of_nothing_garbage_or_the_future_is_harmless():
    assert friendly(None) == "" and friendly("") == "" and friendly("not a time") == ""
    assert friendly("2026-11-26T12:00:30+00:00") == "just now"  # a clock a little ahead
    assert friendly("2026-11-28T09:00:00+00:00") == "28 Nov 2026, 09:00"
