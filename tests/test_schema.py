"""The canonical data model: schemas, keys, required columns, and conform()."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from effortlens.schema import EFFORT_OR_PIPELINE, TABLES, UTC_TS, conform

EXPECTED_COLUMNS = {
    "reps": [
        "rep_id",
        "rep_name",
        "team",
        "segment",
        "region",
        "role",
        "manager_id",
        "hire_date",
        "exit_date",
        "exit_reason",
        "timezone",
    ],
    "activities": [
        "activity_id",
        "rep_id",
        "ts",
        "activity_type",
        "account_id",
        "opportunity_id",
        "contact_id",
        "duration_min",
    ],
    "buyer_actions": [
        "action_id",
        "ts",
        "account_id",
        "opportunity_id",
        "contact_id",
        "action_type",
        "is_verifier",
        "weight",
    ],
    "opportunities": [
        "opportunity_id",
        "account_id",
        "rep_id",
        "created_ts",
        "amount",
        "currency",
        "close_ts",
        "outcome",
    ],
    "stage_history": ["opportunity_id", "stage", "entered_ts", "verifier_action_id", "derived"],
    "interventions": ["intervention_id", "name", "practice", "start_date", "end_date"],
    "intervention_participants": ["intervention_id", "rep_id"],
}


def test_the_seven_tables_and_their_columns():
    assert {t: list(s.columns) for t, s in TABLES.items()} == EXPECTED_COLUMNS
    assert all(name == spec.name for name, spec in TABLES.items())
    assert set(EFFORT_OR_PIPELINE) <= set(TABLES)


@pytest.mark.parametrize("table", list(TABLES))
def test_column_types_follow_the_field_conventions(table):
    for column, dtype in TABLES[table].columns.items():
        if column.endswith("_id") or column in ("rep_name", "team", "stage", "outcome"):
            assert dtype == pl.String, column
        elif column == "ts" or column.endswith("_ts"):
            assert dtype == UTC_TS, column
        elif column.endswith("_date"):
            assert dtype == pl.Date, column
    assert UTC_TS == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("table", list(TABLES))
def test_required_key_and_not_null_are_consistent(table):
    spec = TABLES[table]
    assert set(spec.required) <= set(spec.columns)
    assert set(spec.not_null) <= set(spec.columns)
    assert set(spec.not_null) <= set(spec.required)  # a required value needs its column
    if spec.key is not None:
        assert spec.key in spec.required and spec.key in spec.not_null
    assert set(spec.description) == set(spec.columns)
    assert spec.empty().schema == spec.schema and spec.empty().height == 0


def test_link_tables_have_no_single_key():
    keyless = {t for t, s in TABLES.items() if s.key is None}
    assert keyless == {"stage_history", "intervention_participants"}


def test_conform_adds_missing_drops_extra_and_casts():
    frame = pl.DataFrame(
        {
            "extra": [1, 2],
            "ts": [datetime(2024, 1, 1, 9), datetime(2024, 1, 2, 9)],
            "rep_id": ["r1", "r2"],
            "activity_id": ["a1", "a2"],
            "duration_min": [5, 7],
            "activity_type": ["call", "email"],
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.cast_time_unit("ms"))
    got = conform(frame, "activities").collect()
    expected = pl.DataFrame(
        {
            "activity_id": ["a1", "a2"],
            "rep_id": ["r1", "r2"],
            "ts": [datetime(2024, 1, 1, 9, tzinfo=UTC), datetime(2024, 1, 2, 9, tzinfo=UTC)],
            "activity_type": ["call", "email"],
            "account_id": [None, None],
            "opportunity_id": [None, None],
            "contact_id": [None, None],
            "duration_min": [5.0, 7.0],
        },
        schema=TABLES["activities"].schema,
    )
    assert_frame_equal(got, expected)
    assert frame.columns[0] == "extra"  # input untouched


def test_conform_of_an_empty_frame_gives_the_schema():
    got = conform(pl.DataFrame({"intervention_id": []}), "interventions").collect()
    assert_frame_equal(got, TABLES["interventions"].empty())


def test_conform_is_strict_about_values_it_cannot_cast():
    frame = pl.DataFrame({"intervention_id": ["i1"], "start_date": ["not a date"]})
    with pytest.raises(pl.exceptions.InvalidOperationError):
        conform(frame, "interventions").collect()
    ok = conform(
        pl.DataFrame({"intervention_id": ["i1"], "start_date": [date(2024, 3, 1)]}), "interventions"
    ).collect()
    assert ok["start_date"].to_list() == [date(2024, 3, 1)]


def test_every_public_name_of_the_package_resolves():
    import effortlens

    for name in effortlens.__all__:
        assert getattr(effortlens, name) is not None, name
    import pytest as _pytest

    with _pytest.raises(AttributeError):
        effortlens.no_such_metric  # noqa: B018


def test_the_polars_core_never_imports_widget_code():
    """lib/ is pure: no module of it imports ipywidgets, traitlets or the widget package.

    (Altair itself may load ipywidgets when it is installed; that is Altair's business.)
    """
    import ast

    import effortlens

    root = Path(effortlens.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("ipywidgets", "traitlets", "effortlens_widgets"):
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert len(list(root.rglob("*.py"))) > 20
    assert offenders == []
