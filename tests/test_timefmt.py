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
