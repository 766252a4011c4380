"""Partial data, end to end: every page and command says what the data cannot say.

Real exports are often partial: no buyer actions, only won deals, a pipeline snapshot without
stage changes, reps without a team, peer groups of one from job titles. For each such fixture
(and every CRM fixture under tests/data/crm/), the data is loaded, every CLI command runs, and
every app is built headless: no error box, no exception name or traceback, and the honest
sentence (what cannot be measured, and why) is on the page.

Fixtures:
- ``tests/data/partial/pipeline_snake``: a pipeline-only export with snake_case headers (in the
  style of public CRM datasets): outcome in the stage column, no stage history (derived),
  skipped stages, lost deals whose stage is unknown, two reps without a team.
- ``tests/data/partial/sf_titles``: a Salesforce Opportunity + User export without
  OpportunityHistory; every rep has a different job title (role), so every peer group by
  segment and role is a singleton; one rep has no title or division.
- made here from the tiny planted sample (so that they hold enough activity to draw):
  ``no_buyer_actions`` (the buyer-actions export left out), ``only_won`` and ``only_lost``
  (every closed deal one way), ``missing_attributes`` (some reps without team, segment or role).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from widget_support import app_factories, page_html

from effortlens.cli import main
from effortlens.coverage import (
    UNKNOWN,
    Coverage,
    data_coverage,
    stage_path_of,
    with_known_groups,
)
from effortlens_widgets.apps.buyer_journey import buyer_journey_app
from effortlens_widgets.apps.habits import habits_app
from effortlens_widgets.apps.organisation import organisation_app
from effortlens_widgets.apps.positive_deviance import positive_deviance_app
from effortlens_widgets.apps.rep_mirror import rep_mirror_app
from effortlens_widgets.apps.return_on_effort import return_on_effort_app

DATA = Path(__file__).parent / "data"
PARTIAL = DATA / "partial"
CRM = sorted(p for p in (DATA / "crm").iterdir() if p.is_dir()) if (DATA / "crm").is_dir() else []

APPS = app_factories()
#: A library exception's name as Python prints it ("KeyError: ..."), or a traceback: what a
#: user must never see (a Salesforce object such as ActivityRecurrence2Exception is fine).
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b:|Traceback \(most recent")

#: Fixture -> (page, the honest sentence it must show).
HONEST = {
    "no_buyer_actions": [
        (return_on_effort_app, "no buyer actions"),
        (habits_app, "needs buyer actions"),
        (organisation_app, "no buyer actions"),
    ],
    "only_won": [(buyer_journey_app, "is won")],
    "only_lost": [(buyer_journey_app, "No closed deal in this data is won")],
    "missing_attributes": [(organisation_app, UNKNOWN), (return_on_effort_app, UNKNOWN)],
    "pipeline_snake": [
        (buyer_journey_app, "derived from each deal"),
        (buyer_journey_app, "do not say at which stage"),
        (buyer_journey_app, "Times in stage are not measured"),
    ],
    "pipedrive_deals": [
        (buyer_journey_app, "derived from each deal"),
        (buyer_journey_app, "does not say at which stage it ended"),
    ],
    "sf_titles": [(positive_deviance_app, "compared with a broader group")],
}


# ----------------------------------------------------------------------------- the fixtures


def _variant(tiny: Path, folder: Path, change) -> Path:
    shutil.copytree(tiny, folder)
    for extra in (*folder.glob("_truth*"), folder / "truth.json"):
        extra.unlink(missing_ok=True)
    change(folder)
    return folder


def _outcomes(to: str):
    def change(folder: Path) -> None:
        path = folder / "opportunities.parquet"
        closed = pl.col("outcome") != "open"
        deals = pl.read_parquet(path).with_columns(
            outcome=pl.when(closed).then(pl.lit(to)).otherwise("outcome")
        )
        deals.write_parquet(path)

    return change


def _no_buyer_actions(folder: Path) -> None:
    (folder / "buyer_actions.parquet").unlink()
    history = pl.read_parquet(folder / "stage_history.parquet")
    history.with_columns(verifier_action_id=pl.lit(None, dtype=pl.String)).write_parquet(
        folder / "stage_history.parquet"
    )


def _missing_attributes(folder: Path) -> None:
    reps = pl.read_parquet(folder / "reps.parquet")
    i = pl.int_range(reps.height)
    reps.with_columns(
        team=pl.when(i % 3 == 0).then(None).otherwise("team"),
        segment=pl.when(i % 4 == 1).then(pl.lit("")).otherwise("segment"),
        role=pl.when(i % 5 == 2).then(None).otherwise("role"),
    ).write_parquet(folder / "reps.parquet")


@pytest.fixture(scope="session")
def partial_folders(tiny_planted, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("partial")
    made = {
        "no_buyer_actions": _no_buyer_actions,
        "only_won": _outcomes("won"),
        "only_lost": _outcomes("lost"),
        "missing_attributes": _missing_attributes,
    }
    folders = {name: _variant(tiny_planted, root / name, change) for name, change in made.items()}
    folders |= {p.name: p for p in sorted(PARTIAL.iterdir()) if p.is_dir()}
    return folders


PARTIAL_NAMES = [
    "no_buyer_actions",
    "only_won",
    "only_lost",
    "missing_attributes",
    *sorted(p.name for p in PARTIAL.iterdir() if p.is_dir()),
]
ALL_CASES = [*PARTIAL_NAMES, *(f"crm/{p.name}" for p in CRM)]


def _folder(partial_folders, case: str) -> Path:
    return DATA / case if case.startswith("crm/") else partial_folders[case]


# --------------------------------------------------------------------------------- the CLI


def _commands(folder: Path) -> list[list[str]]:
    data = str(folder)
    return [
        ["detect", data],
        ["load", data],
        ["load", data, "--json"],
        ["roe", data],
        ["roe", data, "--by", "team"],
        ["roe", data, "--json"],
        ["deviants", data],
        ["deviants", data, "--metric", "win_rate"],
        ["deviants", data, "--json"],
        ["flow", data],
        ["flow", data, "--json"],
        ["flow", data, "--by", "team"],
        ["habits", data],
        ["organisation", data],
        ["findings", data],
        ["findings", data, "--json"],
    ]


def _loads(folder: Path, capsys) -> bool:
    """Whether the folder loads as it is; a folder that needs a mapping first (a generic
    export without mapping.toml, for mapping-template) must say so in words, exit 2."""
    code = main(["load", str(folder)])
    out, err = capsys.readouterr()
    if code == 0:
        return True
    assert code == 2 and "mapping" in err and not EXCEPTION_NAME.search(err), err
    return False


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_command_runs_and_says_why_when_empty(case, partial_folders, capsys):
    folder = _folder(partial_folders, case)
    loads = _loads(folder, capsys)
    for argv in _commands(folder):
        code = main(argv)
        out, err = capsys.readouterr()
        assert not EXCEPTION_NAME.search(out + err), f"{argv}: {out}{err}"
        if not loads and argv[0] != "detect":
            assert code == 2 and "mapping" in err, f"{argv}: {err}"
            continue
        assert code == 0, f"{argv}: exit {code}: {err}"
        assert not EXCEPTION_NAME.search(out + err), f"{argv}: {out}{err}"
        assert "(no rows)" not in out and "(no findings)" not in out, argv
        if "--json" in argv:
            parsed = json.loads(out)
            if parsed == []:
                assert err.strip(), f"{argv}: empty JSON without a reason on stderr"
        else:
            assert out.strip(), f"{argv}: printed nothing"


def test_flow_json_says_whether_the_stage_path_was_recorded_or_derived(
    partial_folders, tiny_planted, capsys
):
    assert main(["flow", str(partial_folders["pipeline_snake"]), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["stage_path"] for r in rows} == {"derived"}
    assert all(r["median_days"] is None and r["blocked"] is None for r in rows)
    assert sum(r["lost_stage_unknown"] for r in rows) > 0
    assert main(["flow", str(tiny_planted), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["stage_path"] for r in rows} == {"recorded"}
    assert any(r["median_days"] is not None for r in rows)


def test_cli_notes_what_the_data_cannot_say(partial_folders, capsys):
    assert main(["roe", str(partial_folders["no_buyer_actions"]), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "no buyer actions" in err
    assert all(r["response_rate"] is None for r in json.loads(out))  # unknown, not 0
    assert main(["habits", str(partial_folders["pipeline_snake"])]) == 0
    assert "No seller activities" in capsys.readouterr().out
    assert main(["deviants", str(partial_folders["only_won"]), "--metric", "win_rate"]) == 0
    out, err = capsys.readouterr()
    assert "every closed deal has the same result" in out and "is won" in err


# -------------------------------------------------------------------------------- the apps


def _words(page: str) -> str:
    """The page's text without markup (stressed words read as the rest)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def _page(app) -> str:
    text = page_html(app)
    return text.replace("&#x27;", "'")


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_app_draws_without_an_error_box(case, partial_folders, capsys):
    folder = _folder(partial_folders, case)
    loads = _loads(folder, capsys)
    for factory in APPS:
        app = factory(data_dir=folder)
        page = _page(app)
        assert app.state.error == "", (factory.__name__, app.state.error)
        if not loads:  # one box saying what to do (write a mapping), nothing drawn
            assert page.count('class="el-error"') == 1 and "mapping" in page
            assert not EXCEPTION_NAME.search(page), factory.__name__
            continue
        assert 'class="el-error"' not in page, (factory.__name__, page[-1500:])
        assert not EXCEPTION_NAME.search(page), factory.__name__
        assert "nan" not in re.sub(r"<[^>]+>", " ", page).split(), factory.__name__
    if loads:  # Start here: the load report of the same folder
        from effortlens.adapters import load_any
        from effortlens_widgets.load_report import LoadReportView

        report = _page(LoadReportView(value=load_any(folder)))
        assert 'class="el-error"' not in report and not EXCEPTION_NAME.search(report)


@pytest.mark.parametrize("case", sorted(HONEST))
def test_the_page_says_what_the_data_cannot_say(case, partial_folders):
    folder = partial_folders[case]
    for factory, sentence in HONEST[case]:
        app = factory(data_dir=folder)
        page = _page(app)
        if sentence is not None:
            assert sentence in _words(page), (factory.__name__, sentence)


def test_only_won_deals_draw_no_rep_at_a_100_percent_win_rate(partial_folders):
    app = positive_deviance_app(data_dir=partial_folders["only_won"])
    view = next(v for v in app.views if type(v).__name__ == "Deviance")
    view.metric = "win_rate"
    words = _words(_page(app))
    assert "Win rates cannot be compared" in words and "is won" in words
    assert "deviance" not in view.frames


def test_no_buyer_actions_shows_no_zero_response_rate(partial_folders):
    app = return_on_effort_app(data_dir=partial_folders["no_buyer_actions"])
    cards = dict(app.frames()["headline"].select("label", "value").iter_rows())
    assert cards["Response rate"] is None
    assert cards["Customer-facing activities"] > 0
    assert "silent_streaks" not in app.frames()


def test_no_buyer_actions_mirror_draws_effort_only(partial_folders):
    app = rep_mirror_app(data_dir=partial_folders["no_buyer_actions"])
    weeks = app.frames()["weeks"]
    assert weeks.height > 0
    assert weeks["metric"].unique().to_list() == ["activities"]  # no response-rate line at 0


def test_organisation_unknown_team_is_a_group_and_never_nan(partial_folders):
    app = organisation_app(data_dir=partial_folders["missing_attributes"])
    teams = app.frames()["teams"]
    assert UNKNOWN in teams["team"].to_list()
    page = _page(app)
    assert "+nan" not in page and "— has the least" not in page


def test_deviance_page_names_the_broader_grouping_and_claims_no_chance_without_power(
    partial_folders,
):
    app = positive_deviance_app(data_dir=partial_folders["sf_titles"])
    page = _page(app)
    assert "within what chance produces" not in page
    assert "too wide to tell" in _words(page)
    deviance = app.frames()["deviance"]
    assert set(deviance["peer_basis"]) <= {"segment · role", "segment", "all reps"}
    assert "segment · role" not in set(deviance["peer_basis"])  # every title is a singleton


# ------------------------------------------------------------------------- the lib, directly


def test_coverage_reads_the_load_and_its_report(partial_folders):
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich

    data = load_any(partial_folders["pipeline_snake"])
    coverage = data_coverage(enrich(data), report=data.report)
    assert coverage.stage_path == "derived" and not coverage.times_in_stage
    assert not coverage.has_activities and not coverage.has_buyer_actions
    assert coverage.unknown_groups == {"team": 2, "segment": 9, "role": 9}
    assert coverage.win_rate_measurable
    data = load_any(partial_folders["only_won"])
    coverage = data_coverage(enrich(data), report=data.report)
    assert coverage.one_sided == "won" and coverage.stage_path == "recorded"


def test_coverage_reads_the_derived_flag_not_the_notes(partial_folders):
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich

    data = load_any(partial_folders["pipeline_snake"])
    history = data.tables["stage_history"]
    assert history["derived"].all()  # every entry of a snapshot is marked
    # no report at all: the flag alone says the path was derived
    coverage = data_coverage(enrich(data))
    assert coverage.stage_path == "derived"
    assert coverage.derived_deals == history["opportunity_id"].n_unique()
    recorded = history.with_columns(derived=pl.lit(None, dtype=pl.Boolean))
    assert stage_path_of(recorded) == ("recorded", None)
    assert stage_path_of(recorded.drop("derived")) == ("recorded", None)
    one = history["opportunity_id"][0]
    mixed = history.with_columns(derived=pl.col("opportunity_id") == one)
    assert stage_path_of(mixed.lazy()) == ("mixed", 1)
    assert stage_path_of(history.clear())[0] == "none"
    assert stage_path_of(None)[0] == "none"


def test_one_sided_outcomes_and_caveats_by_section():
    both = Coverage(activities=1, buyer_actions=1, outcomes={"won": 3, "lost": 2})
    assert both.one_sided is None and both.caveats() == []
    lost = Coverage(outcomes={"lost": 2, "no_decision": 1})
    assert lost.one_sided == "lost" and not lost.win_rate_measurable
    assert lost.caveats("journey") and not lost.caveats("roe")
    none = Coverage(activities=5)
    assert none.caveats("roe") and not none.caveats("journey")


def test_with_known_groups_fills_missing_and_blank_values():
    reps = pl.DataFrame({"rep_id": ["a", "b", "c"], "team": ["N", None, "  "], "role": ["AE"] * 3})
    out = with_known_groups(reps)
    assert out["team"].to_list() == ["N", UNKNOWN, UNKNOWN]
    assert out["segment"].to_list() == [UNKNOWN] * 3 and out["role"].to_list() == ["AE"] * 3


def _snapshot_tables(*, flag: bool = True):
    """Five deals, history derived from a snapshot: a skip, a loss at the first stage that
    the export states (d5) and a loss whose stage the export does not give (d2: no entry).
    ``flag`` False leaves the ``derived`` column empty (as a canonical file without it)."""
    from effortlens.schema import conform

    ts = pl.datetime(2024, 1, 1, time_zone="UTC")
    deals = pl.DataFrame(
        {
            "opportunity_id": ["d1", "d2", "d3", "d4", "d5"],
            "account_id": ["a"] * 5,
            "rep_id": ["r"] * 5,
            "outcome": ["open", "lost", "won", "open", "lost"],
        }
    ).with_columns(created_ts=ts, close_ts=pl.lit(None, dtype=pl.Datetime("us", "UTC")))
    history = pl.DataFrame(
        {
            "opportunity_id": ["d1", "d1", "d3", "d3", "d4", "d5"],
            "stage": ["prospect", "proposal", "prospect", "commit", "prospect", "prospect"],
        }
    ).with_columns(entered_ts=ts, derived=pl.lit(flag or None, dtype=pl.Boolean))
    return {
        "opportunities": conform(deals, "opportunities").collect(),
        "stage_history": conform(history, "stage_history").collect(),
    }


def test_derived_flow_invents_no_path_and_keeps_unknown_losses_apart():
    from effortlens.flow import flow_table
    from effortlens.settings import load_settings

    settings = load_settings()
    derived = flow_table(_snapshot_tables(), settings=settings)  # read from the flag
    recorded = flow_table(_snapshot_tables(flag=False), settings=settings)
    assert derived.equals(
        flow_table(_snapshot_tables(flag=False), settings=settings, stage_path="derived")
    )
    by_stage = {r["stage"]: r for r in derived.iter_rows(named=True)}
    assert by_stage["discovery"]["reached"] == 0 and derived["skipped"].sum() == 0
    assert {r["stage"]: r for r in recorded.iter_rows(named=True)}["discovery"]["reached"] == 2
    prospect = by_stage["prospect"]
    # d2 (no stage given) is a loss at an unknown stage; d5 (stated at prospect) leaked there
    assert prospect["lost_stage_unknown"] == 1 and prospect["leaked"] == 1
    assert prospect["reached"] == 5
    shares = prospect["conversion"] + prospect["leakage"] + prospect["open_share"]
    assert shares + prospect["lost_stage_unknown"] / prospect["reached"] == pytest.approx(1)
    assert derived["median_days"].null_count() == derived.height
    assert derived["moves"].sum() == 0  # a derived entry's time is no move
    assert set(derived["stage_path"]) == {"derived"}
    # recorded: a deal without entries is left out; d5's loss leaks at prospect
    assert recorded.filter(pl.col("stage") == "prospect")["leaked"].item() == 1
    assert recorded["lost_stage_unknown"].sum() == 0
    assert set(recorded["stage_path"]) == {"recorded"}


def test_times_in_stage_come_only_from_recorded_entries():
    from datetime import UTC, datetime, timedelta

    from effortlens.flow import flow_table
    from effortlens.schema import conform
    from effortlens.settings import load_settings

    start = datetime(2024, 1, 1, tzinfo=UTC)
    deals = pl.DataFrame(
        {
            "opportunity_id": ["r1", "r2", "s1", "s2"],
            "account_id": ["a"] * 4,
            "rep_id": ["r"] * 4,
            "outcome": ["won", "won", "won", "won"],
            "created_ts": [start] * 4,
            "close_ts": [start + timedelta(days=40)] * 4,
        }
    )
    # recorded deals spend 10 days in prospect; the snapshot deals' entries (all at their
    # created time) would say 0 days if they were timed
    history = pl.DataFrame(
        {
            "opportunity_id": ["r1", "r1", "r2", "r2", "s1", "s1", "s2", "s2"],
            "stage": ["prospect", "commit"] * 4,
            "entered_ts": [start, start + timedelta(days=10)] * 2 + [start, start] * 2,
            "derived": [False] * 4 + [True] * 4,
        }
    )
    tables = {
        "opportunities": conform(deals, "opportunities").collect(),
        "stage_history": conform(history, "stage_history").collect(),
    }
    flow = flow_table(tables, settings=load_settings())
    prospect = flow.filter(pl.col("stage") == "prospect").row(0, named=True)
    assert prospect["median_days"] == pytest.approx(10)
    assert prospect["moves"] == 0 and prospect["reached"] == 4
    assert flow.filter(pl.col("stage") == "commit")["moves"].item() == 2
    assert set(flow["stage_path"]) == {"mixed"}
    # the snapshot deals reach only the stages they entered (no invented path between)
    assert flow.filter(pl.col("stage") == "discovery")["skipped"].item() == 2


def test_pipedrive_losses_at_the_first_stage_are_leaks_there_and_unknown_ones_apart():
    """A Pipedrive-style export keeps the stage a lost deal was lost at: two deals lost at
    the first stage (Qualified) leak there, one lost at Proposal Made leaks there, and the
    one whose stage is empty is "lost, stage unknown"."""
    from effortlens.adapters import load_any
    from effortlens.enrich import enrich
    from effortlens.flow import flow_table

    data = load_any(PARTIAL / "pipedrive_deals")
    enriched = enrich(data)
    assert data_coverage(enriched).stage_path == "derived"
    flow = {r["stage"]: r for r in flow_table(enriched).iter_rows(named=True)}
    assert flow["prospect"]["leaked"] == 2 and flow["prospect"]["lost_stage_unknown"] == 1
    assert flow["proposal"]["leaked"] == 1 and flow["proposal"]["reached"] == 1
    assert sum(r["lost_stage_unknown"] for r in flow.values()) == 1
    assert all(r["median_days"] is None for r in flow.values())
    # by team: the reps have no team (null before enrichment fills it), still one group
    by_team = flow_table(enriched, by="team")
    assert by_team["reached"].sum() == sum(r["reached"] for r in flow.values())
    assert by_team["lost_stage_unknown"].sum() == 1 and by_team["leaked"].sum() == 3
    # the snake_case pipeline writes Lost in its stage column: every loss's stage is unknown
    snake = enrich(load_any(PARTIAL / "pipeline_snake"))
    rows = flow_table(snake).to_dicts()
    lost = snake.tables["opportunities"].filter(pl.col("outcome") != "won")
    lost = lost.filter(pl.col("outcome") != "open").height
    assert sum(r["lost_stage_unknown"] for r in rows) == lost > 0
    assert sum(r["leaked"] for r in rows) == 0


def test_journey_findings_on_derived_history_say_no_wait_and_the_unknown_losses():
    from effortlens.findings import findings_text, journey_findings
    from effortlens.flow import flow_table
    from effortlens.settings import load_settings

    flow = flow_table(_snapshot_tables(), settings=load_settings())
    text = findings_text(journey_findings(flow, stage_path="derived"))
    assert "wait longest" not in text and "1 lost or no-decision deal does not say" in text
    # one of the five deals leaked at prospect (the export says so); the unknown loss is
    # not counted there: 20%, not 40%
    assert "leak most at prospect: 20%" in text


def test_deviance_without_power_never_claims_chance():
    from effortlens.findings import deviance_findings, findings_text

    deviance = pl.DataFrame(
        {
            "rep_id": ["a", "b"],
            "peer_group": ["x", "x"],
            "peer_basis": ["segment", "all reps"],
            "direction": ["none", "none"],
            "z": [0.1, -0.2],
            "volume": [3, 4],
            "detectable": [False, False],
        }
    )
    text = findings_text(deviance_findings(deviance, pl.DataFrame(), metric="win_rate"))
    assert "within what chance" not in text and "cannot say who differs" in text
    assert "their segment (1 rep)" in text and "all reps together (1 rep)" in text
    powered = deviance.with_columns(detectable=pl.lit(True), peer_basis=pl.lit("segment · role"))
    text = findings_text(deviance_findings(powered, pl.DataFrame(), metric="win_rate"))
    assert "within what chance produces" in text and "broader" not in text


def test_organisation_findings_skip_nan_and_null():
    from effortlens.findings import findings_text, organisation_findings

    table = pl.DataFrame(
        {
            "team": [None, "North"],
            "selling_time": [0.2, 0.3],
            "internal_load": [0.1, 0.1],
            "annualised_attrition": [0.0, 0.0],
        }
    )
    shares = pl.DataFrame({"metric": ["response_rate"], "share_between": [float("nan")]})
    text = findings_text(organisation_findings(table, shares, {"rho": float("nan"), "n_teams": 5}))
    assert "nan" not in text and UNKNOWN in text and "loses the most" not in text


def test_a_failing_view_says_what_to_do_and_logs_the_detail(partial_folders, monkeypatch):
    import effortlens_widgets.app as app_module
    from effortlens_widgets.views import Trend

    logged = []
    monkeypatch.setattr(app_module, "log_problem", lambda what, err: logged.append(err) or "now")

    def broken(self, view):
        raise KeyError("column 'weird' not found")

    monkeypatch.setattr(Trend, "render", broken)
    app = return_on_effort_app(data_dir=partial_folders["missing_attributes"])
    page = _page(app)
    assert "could not be drawn" in page and "server log" in page
    assert "KeyError" not in page and "weird" not in page
    assert logged and isinstance(logged[0], KeyError)


def test_a_closed_pipe_exits_quietly(tiny_planted, tmp_path):
    command = f"{sys.executable} -m effortlens.cli roe {tiny_planted} --by week --wide | head -n 2"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_a_load_bug_shows_what_to_do_without_the_exception(partial_folders, monkeypatch, tmp_path):
    import effortlens.loading.pipeline as pipeline
    import effortlens_widgets.app as app_module
    from effortlens_widgets.app import App

    def panics(raw, **kwargs):
        raise pl.exceptions.PanicException("index out of bounds")

    logged = []
    monkeypatch.setattr(app_module, "log_problem", lambda what, err: logged.append(err) or "now")
    monkeypatch.setattr(pipeline, "validate_table", panics)
    folder = shutil.copytree(partial_folders["only_lost"], tmp_path / "data")
    monkeypatch.setenv("EFFORTLENS_CACHE", str(tmp_path / "cache"))  # no build to read back
    app = App(title="T", question="Q?", views=[], data_dir=folder)
    status = _page(app)
    assert "could not be loaded" in status and "a bug" in status and "server log" in status
    assert "PanicException" not in status and "index out of bounds" not in status
    assert logged


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian chromium")
def test_the_journey_of_a_pipeline_snapshot_in_chromium(browser):
    """The buyer journey of a pipeline-only export, served by Voilà, as a sales leader sees it:
    the note on derived stages, the unknown-stage losses, no time in stage; a screenshot goes
    to $EFFORTLENS_TEST_ARTIFACTS."""
    from browser_support import ARTIFACTS, voila_server, wait_for_text

    said = [
        "derived from each deal's current stage",
        "do not say at which stage they ended",
        "Times in stage are not measured",
    ]
    with voila_server(PARTIAL / "pipeline_snake", log_path=ARTIFACTS / "voila-partial.log") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 2400})
        page.goto(f"{url}/voila/render/03_buyer_journey.ipynb", timeout=180_000)
        page.wait_for_selector(".el-caveat", timeout=180_000)
        page.wait_for_selector(".vega-embed svg, .vega-embed canvas", timeout=120_000)
        wait_for_text(page, said)  # the page's parts render one after another
        text = re.sub(r"\s+", " ", page.inner_text("body"))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "partial-pipeline-journey.png"), full_page=True)
        page.close()
    assert [words for words in said if words not in text] == []
    assert "wait longest" not in text and "Traceback" not in text
