from dashboard.tables import without_empty_columns


def test_columns_empty_in_every_row_are_dropped_and_the_rest_keep_their_order():
    rows = [{"name": "a", "detail": "", "memory (GB)": "1", "tags": ""},
            {"name": "b", "detail": None, "memory (GB)": "2", "tags": "team=x"}]
    assert without_empty_columns(rows) == [{"name": "a", "memory (GB)": "1", "tags": ""},
                                           {"name": "b", "memory (GB)": "2", "tags": "team=x"}]
    assert list(without_empty_columns(rows, keep=["detail"])[0]) == ["name", "detail", "memory (GB)", "tags"]


def test_a_zero_or_false_is_a_value_not_an_empty_cell():
    assert without_empty_columns([{"n": 0, "ok": False, "gone": "-"}]) == [{"n": 0, "ok": False}]
    assert without_empty_columns([]) == []
