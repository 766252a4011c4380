"""Every finding sentence, defined once: what the habits, deviance, flow and ROE tables say.

A finding is one sentence about a metric table, with the words to stress marked ``**like
this**``. The pages render findings as HTML (:func:`findings_html`), the command line as plain
text (:func:`findings_text`), and the pattern session shows the same sentences as the pages,
because they all call the functions of this module on the tables of the metric modules:

- :func:`habits_findings` on :func:`effortlens.habits.habits_table` (the best timing by its
  Wilson bound, the least answered cadence, the sequence that pays);
- :func:`deviance_findings` on :func:`effortlens.deviance.rep_deviance` and
  :func:`effortlens.deviance.what_differs` (who stands out, what they do differently);
- :func:`journey_findings` on :func:`effortlens.flow.flow_table` (where deals leak, wait,
  lack buyer evidence);
- :func:`team_findings`: all three for one enriched load (the session's recap, the CLI);
- :func:`organisation_findings`, :func:`intervention_findings`, :func:`mirror_findings`:
  the organisation, interventions and rep-mirror pages' sentences;
- :func:`roe_headline`: the return-on-effort figures against the period before.

Examples
--------
>>> import effortlens as el  # doctest: +SKIP
>>> print(findings_text(team_findings(el.enrich(el.load_any("data")))))  # doctest: +SKIP
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from effortlens.enrich import events, has_rows, table
from effortlens.measures import METRIC_LABELS
from effortlens.roe import roe_by
from effortlens.vocabulary import FIRST_TOUCH, SEQUENCE_SEPARATOR, hour_name, weekday_name

if TYPE_CHECKING:
    from effortlens.coverage import Coverage
    from effortlens.enrich import Enriched

#: Fewest touches a cadence bin needs before it can be called the least answered.
MIN_CADENCE_ACTIVITIES = 50
#: A sequence of touches is named only when the lower 95% (Wilson) limit of its lift over
#: its last touch's type is at least this: sequences are ranked from many, under last-touch
#: credit (which flatters quick follow-ups), so a lift merely above 1 names one on data
#: with no habit at all.
MIN_SEQUENCE_LIFT = 1.2
#: How many positive deviants a deviance finding names.
NAMED_DEVIANTS = 4
#: Joins the activity type, weekday and hour of a timing cell in ``habits_table``.
_TIMING_SEPARATOR = " · "
_STRESS = re.compile(r"\*\*(.+?)\*\*")
#: Activity types whose plural is not ``type + s``.
_PLURALS = {"social": "social touches", "other": "other touches", "admin": "admin tasks"}


@dataclass(frozen=True)
class Finding:
    """One finding sentence about a metric table.

    Attributes
    ----------
    topic
        What it is about: ``timing``, ``cadence``, ``sequence``, ``deviants``,
        ``what_differs``, ``leakage``, ``waiting``, ``verification``.
    text
        The sentence; ``**…**`` marks the words to stress.
    new_line
        Start a new line when findings are shown together.

    Examples
    --------
    >>> Finding("leakage", "Deals leak most at **proposal**.").plain
    'Deals leak most at proposal.'
    """

    topic: str
    text: str
    new_line: bool = False

    @property
    def plain(self) -> str:
        """The sentence without stress marks."""
        return _STRESS.sub(r"\1", self.text)

    @property
    def html(self) -> str:
        """The sentence as HTML: escaped, the stressed words in ``<b>``."""
        return _STRESS.sub(r"<b>\1</b>", html.escape(self.text, quote=False))


def findings_html(findings: Sequence[Finding]) -> str:
    """Findings as one ``<div class="el-finding">`` (empty string when there are none).

    Examples
    --------
    >>> findings_html([Finding("leakage", "Deals leak at **proposal**.")])
    '<div class="el-finding">Deals leak at <b>proposal</b>.</div>'
    """
    if not findings:
        return ""
    text = ""
    for i, finding in enumerate(findings):
        if i:
            text += "<br>" if finding.new_line else " "
        text += finding.html
    return f'<div class="el-finding">{text}</div>'


#: The section of the workbench each topic belongs to (the page that shows it).
SECTIONS: dict[str, str] = {
    "timing": "habits",
    "cadence": "habits",
    "sequence": "habits",
    "deviants": "deviance",
    "what_differs": "deviance",
    "leakage": "journey",
    "waiting": "journey",
    "verification": "journey",
    "selling_time": "organisation",
    "attrition": "organisation",
    "attrition_vs_selling_time": "organisation",
    "between_teams": "organisation",
    "unknown_stage": "journey",
    "grouping": "deviance",
    "intervention": "interventions",
    "mirror": "mirror",
}


def by_section(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings grouped by :data:`SECTIONS`, in the order the sections first appear.

    Examples
    --------
    >>> found = [Finding("timing", "a"), Finding("leakage", "b"), Finding("cadence", "c")]
    >>> [[f.text for f in group] for group in by_section(found)]
    [['a', 'c'], ['b']]
    """
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(SECTIONS.get(finding.topic, finding.topic), []).append(finding)
    return list(groups.values())


def findings_text(findings: Sequence[Finding]) -> str:
    """Findings as plain text, one per line (for the command line).

    Examples
    --------
    >>> findings_text([Finding("a", "One **x**."), Finding("b", "Two.")])
    'One x.\\nTwo.'
    """
    return "\n".join(f.plain for f in findings)


def _plural(activity_type: str) -> str:
    return _PLURALS.get(activity_type, f"{activity_type}s")


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


# ----------------------------------------------------------------------------------- habits


def _habit_effect_findings(effects: dict[str, pl.DataFrame]) -> list[Finding]:
    """Timing and cadence sentences from :func:`effortlens.habits.habit_effects`."""
    found = []
    timing = effects.get("timing")
    if timing is not None and timing.height:
        better = timing.filter(pl.col("flag") == "better").sort("lift", descending=True)
        if better.height:
            named = better.head(4).select(weekday_name(), hour_name())
            cells = ", ".join(f"{day} at {hour}" for day, hour in named.iter_rows())
            top = better.row(0, named=True)
            found.append(
                Finding(
                    "timing",
                    f"Touches on **{cells}** are answered more often than their activity types "
                    f"predict (up to {top['lift']:.1f}×), with each buyer action shared among "
                    "the touches before it.",
                )
            )
        else:
            found.append(
                Finding(
                    "timing",
                    "No weekday or hour stands out once each buyer action is shared among the "
                    "touches before it.",
                )
            )
    cadence = effects.get("cadence")
    if cadence is not None and cadence.height:
        flagged = cadence.filter(
            pl.col("flag").is_not_null() & (pl.col("cadence_bin") != FIRST_TOUCH)
        ).sort("lift")
        if flagged.height:
            r = flagged.row(0, named=True)
            found.append(
                Finding(
                    "cadence",
                    f"Touches **{r['cadence_bin']} days** after the previous one to the same "
                    f"contact are answered {r['lift']:.1f}× as often as their activity types "
                    "predict.",
                )
            )
        else:
            found.append(
                Finding(
                    "cadence",
                    "No follow-up interval stands out once each buyer action is shared among "
                    "the touches before it (quick follow-ups only look better under last-touch "
                    "credit).",
                )
            )
    return found


def habits_findings(
    table: pl.DataFrame, *, effects: dict[str, pl.DataFrame] | None = None
) -> list[Finding]:
    """The best timing, the least answered cadence and the sequence that pays, in words.

    Parameters
    ----------
    table
        :func:`effortlens.habits.habits_table` (or :func:`effortlens.habits.rank_habits`)
        output: timing cells ranked by the lower Wilson limit of their lift over their
        activity type, cadence bins, sequences ranked the same way.

    Returns
    -------
    list of Finding
        ``timing`` (the top-ranked cell, when it is answered more often than its type in
        general), ``cadence`` (the least answered follow-up bin with at least
        :data:`MIN_CADENCE_ACTIVITIES` touches, when there are two such bins) and
        ``sequence`` (the top-ranked sequence, when the lower 95% limit of its lift is at
        least :data:`MIN_SEQUENCE_LIFT`; with ``effects``, "no sequence stands out"
        otherwise).
    effects
        ``{"timing": ..., "cadence": ...}`` from :func:`effortlens.habits.habit_effects`:
        then the timing and cadence sentences come from it (buyer actions shared among the
        touches before them, so last-touch attribution does not flatter quick follow-ups or
        late-day touches), name only the cells it flags, and say when none stands out.

    Examples
    --------
    >>> findings_text(habits_findings(habits_table(enriched)))  # doctest: +SKIP
    """
    found = []
    if effects is not None:
        found += _habit_effect_findings(effects)
    best = table.filter(pl.col("finding") == "best timing").head(1)
    if effects is not None:
        best = best.clear()
    if best.height and (best["lift"][0] or 0) > 1:
        r = best.row(0, named=True)
        activity_type, weekday, hour = r["pattern"].split(_TIMING_SEPARATOR)
        found.append(
            Finding(
                "timing",
                f"**{_plural(activity_type).capitalize()} on {weekday} at {hour}** are answered "
                f"{r['lift']:.1f}× as often as {_plural(activity_type)} in general "
                f"({r['response_rate']:.0%} of {r['activities']:,} touches).",
            )
        )
    follow_ups = table.filter(
        (pl.col("finding") == "cadence")
        & (pl.col("pattern") != FIRST_TOUCH)
        & (pl.col("activities") >= MIN_CADENCE_ACTIVITIES)
    ).sort("response_rate")
    if follow_ups.height >= 2 and effects is None:
        r = follow_ups.row(0, named=True)
        found.append(
            Finding(
                "cadence",
                f"Touches **{r['pattern']} days** after the previous one to the same contact "
                f"are the least answered ({r['response_rate']:.0%}).",
            )
        )
    sequences = table.filter(pl.col("finding") == "sequence")
    named = sequences.filter(_sequence_lift_low() >= MIN_SEQUENCE_LIFT).head(1)
    if named.height:
        r = named.row(0, named=True)
        last = r["pattern"].split(SEQUENCE_SEPARATOR)[-1]
        found.append(
            Finding(
                "sequence",
                f"{_article(last)} {last} that ends the sequence **{r['pattern']}** is answered "
                f"{r['lift']:.1f}× as often as {_plural(last)} in general "
                f"({r['activities']:,} times seen, each buyer action credited to the last touch "
                "before it).",
            )
        )
    elif effects is not None and sequences.height:
        found.append(
            Finding(
                "sequence",
                "No sequence of touches stands out: none is answered clearly more often than "
                f"its last touch's type in general (at least {MIN_SEQUENCE_LIFT:.1f}× at the "
                "lower 95% limit).",
            )
        )
    return found


def _sequence_lift_low() -> pl.Expr:
    """The lower 95% (Wilson) limit of a sequence row's lift over its last touch's type.

    The row's ``lift`` is its rate over the type's, so the type's rate is ``rate / lift``.
    """
    n = pl.col("activities").cast(pl.Float64)
    p = pl.col("responded") / n
    z2 = 1.96**2
    low = (p + z2 / (2 * n) - 1.96 * (p * (1 - p) / n + z2 / (4 * n**2)).sqrt()) / (1 + z2 / n)
    return low * pl.col("lift") / pl.col("response_rate")


# --------------------------------------------------------------------------------- deviance


def _value(value: float | None, feature: str) -> str:
    if value is None:
        return "—"
    if feature.endswith("share"):
        return f"{value:.0%}"
    return f"{value:.2f}"


def deviance_findings(
    deviance: pl.DataFrame, differs: pl.DataFrame, *, metric: str
) -> list[Finding]:
    """Who stands out against peers just like them, and the largest difference in practice.

    Parameters
    ----------
    deviance
        :func:`effortlens.deviance.rep_deviance` (names as they may be shown, e.g.
        pseudonymised).
    differs
        :func:`effortlens.deviance.what_differs` of the positive deviants (may be empty).
    metric
        ``"response_rate"`` or ``"win_rate"``.

    Returns
    -------
    list of Finding
        ``deviants`` (the positive deviants, up to :data:`NAMED_DEVIANTS` by name, largest
        ``z`` first, and how many fall below; or that no rep stands outside the limits) and
        ``what_differs`` (the top-ranked difference), on a new line.

    Examples
    --------
    >>> table = rep_deviance(enriched)  # doctest: +SKIP
    >>> deviance_findings(table, what_differs(enriched.activities, table),
    ...                   metric="response_rate")  # doctest: +SKIP
    """
    noun = "response rate" if metric == "response_rate" else "win rate"
    pos = deviance.filter(pl.col("direction") == "positive").sort("z", descending=True)
    neg = deviance.filter(pl.col("direction") == "negative")
    grouping = _grouping_finding(deviance)
    if pos.height == 0 and neg.height == 0:
        compared = deviance.filter(pl.col("volume") > 0) if "volume" in deviance.columns else None
        powered = (
            compared is None
            or "detectable" not in deviance.columns
            or bool(compared["detectable"].fill_null(False).all())
        )
        if powered:
            text = (
                f"No rep stands outside the 99.8% limits of their peer group on {noun}: "
                "differences here are within what chance produces."
            )
        else:
            blind = int((~compared["detectable"].fill_null(False)).sum())
            what = "closed deals" if metric == "win_rate" else "touches"
            text = (
                f"No rep stands outside the 99.8% limits of their peer group on {noun}, but "
                f"for **{blind} of {compared.height} reps** the limits are too wide to tell: "
                f"with so few {what} (or peers), even a rep at half or double their peers' "
                f"rate would stay inside. This data cannot say who differs on {noun}."
            )
        return [Finding("deviants", text), *grouping]
    names = "rep_name" in deviance.columns
    parts = [
        f"**{(r['rep_name'] if names else None) or r['rep_id']}** ({r['peer_group']}): "
        f"{r['rate']:.0%} against a peer rate of {r['peer_rate']:.0%}"
        for r in pos.head(NAMED_DEVIANTS).iter_rows(named=True)
    ]
    text = (
        f"**{pos.height} rep{'s' if pos.height != 1 else ''}** beat peers just like them on "
        f"{noun} by more than chance allows (outside the 99.8% limits, false-discovery rate "
        "5%): " + "; ".join(parts) + "."
        if pos.height
        else f"No rep beats their peers on {noun} beyond chance."
    )
    if not pos.height and "detectable" in deviance.columns and "volume" in deviance.columns:
        compared = deviance.filter(pl.col("volume") > 0)
        blind = int((~compared["detectable"].fill_null(False)).sum())
        if blind:  # "no rep beats" is no reassurance where the limits could not tell
            text = text[:-1] + (
                f", but for {blind} of {compared.height} reps the limits are too wide to tell."
            )
    if neg.height:
        text += (
            f" {neg.height} rep{'s fall' if neg.height != 1 else ' falls'} clearly below "
            "their peers."
        )
    found = [Finding("deviants", text), *grouping]
    if differs.height:
        top = differs.row(0, named=True)
        found.append(
            Finding(
                "what_differs",
                "What the positive deviants do differently, first of all: "
                f"**{top['feature'].replace('_', ' ')} — {top['level']}** "
                f"({_value(top['deviant_value'], top['feature'])} against "
                f"{_value(top['peer_value'], top['feature'])} for their peers).",
                new_line=True,
            )
        )
    return found


def _grouping_finding(deviance: pl.DataFrame) -> list[Finding]:
    """Which groupings reps were compared within, when peer groups had to be widened.

    ``peer_basis`` (:func:`effortlens.deviance.rep_deviance`) names the keys of the group
    each rep is compared within; several bases, or ``all reps`` alone, mean peer groups
    smaller than the settings' minimum fell back to a broader group.
    """
    if "peer_basis" not in deviance.columns or deviance.height == 0:
        return []
    bases = (
        deviance.filter(pl.col("peer_basis").is_not_null())
        .group_by("peer_basis")
        .len()
        .with_columns(keys=pl.col("peer_basis").str.count_matches("·"))
        .sort(["keys", "len"], descending=True)
    )
    single = bases.height == 1 and bases["peer_basis"][0] != "all reps"
    if bases.height == 0 or single:
        return []
    parts = [
        f"{'all reps together' if basis == 'all reps' else 'their ' + basis} ({n} rep"
        f"{'s' if n != 1 else ''})"
        for basis, n, _ in bases.iter_rows()
    ]
    return [
        Finding(
            "grouping",
            "Some peer groups were smaller than the settings' minimum, so their reps are "
            f"compared with a broader group. Reps are compared within {'; '.join(parts)}.",
            new_line=True,
        )
    ]


# ---------------------------------------------------------------------------------- journey


def has_buyer_evidence(enriched: Enriched) -> bool:
    """Whether verification can be judged: buyer actions or recorded verifiers exist.

    Examples
    --------
    >>> has_buyer_evidence(enriched)  # doctest: +SKIP
    True
    """
    history = enriched.tables["stage_history"]
    return has_rows(table(enriched, "buyer_actions")) or bool(
        history["verifier_action_id"].is_not_null().any()
    )


def _leak_flag_finding(flags: pl.DataFrame) -> Finding:
    """Leaky stages by :func:`effortlens.flow.stage_flags`, or that none stands out."""
    leaky = flags.filter("leaky").sort("leak_ratio", descending=True)
    if leaky.height:
        parts = [
            f"**{r['stage']}** ({r['leak_hazard']:.0%} of the deals whose fate there is known "
            f"end lost or with no decision, against {r['others_leak_hazard']:.0%} at the other "
            "stages)"
            for r in leaky.iter_rows(named=True)
        ]
        return Finding("leakage", "Deals leak beyond chance at " + "; ".join(parts) + ".")
    hazards = flags.drop_nulls("leak_hazard")["leak_hazard"]
    spread = f" ({hazards.min():.0%} to {hazards.max():.0%})" if hazards.len() else ""
    return Finding(
        "leakage",
        f"No stage stands out for leakage: deals leak at similar rates at every stage{spread}, "
        "within what chance and the usual spread between reps produce.",
    )


def _stall_flag_finding(flags: pl.DataFrame, flow: pl.DataFrame | None = None) -> Finding:
    """Stalled stages by :func:`effortlens.flow.stage_flags`, or that none stands out.

    ``stay_ratio`` compares daily exit rates (open deals count their days so far), not
    medians, so the sentence says so and gives the median the time-in-stage chart shows.
    """
    stalled = flags.filter("stalled").sort("stay_ratio", descending=True)
    medians = (
        dict(flow.select("stage", "median_days").iter_rows())
        if flow is not None and "median_days" in flow.columns
        else {}
    )
    if stalled.height:
        parts = []
        for r in stalled.iter_rows(named=True):
            median = medians.get(r["stage"])
            shown = f"; median stay {median:.0f} days" if median is not None else ""
            parts.append(
                f"**{r['stage']}** (deals leave it {r['stay_ratio']:.1f}× more slowly per day "
                f"than the other stages{shown})"
            )
        return Finding("waiting", "Deals stall at " + "; ".join(parts) + ".")
    return Finding(
        "waiting",
        "No stage stands out for waiting: at no stage do deals leave 1.5× more slowly per "
        "day than at the others beyond chance.",
    )


def journey_findings(
    flow: pl.DataFrame,
    *,
    has_evidence: bool = True,
    stage_path: str = "recorded",
    flags: pl.DataFrame | None = None,
) -> list[Finding]:
    """The leakiest, slowest and least verified stages, in words.

    Parameters
    ----------
    flow
        :func:`effortlens.flow.flow_table` over all deals (no ``by``).
    has_evidence
        False when the data holds no buyer actions and no recorded verifiers
        (:func:`has_buyer_evidence`): then verification is unknown, not zero.
    stage_path
        ``"derived"`` when the stage history was made from deals' current stages
        (:class:`effortlens.coverage.Coverage`): no sentence about waiting, and the losses
        whose stage is unknown are said apart.
    flags
        :func:`effortlens.flow.stage_flags`: then a stage is called leaky or slow only when
        it differs from the others by a set amount *and* beyond chance, and "no stage stands
        out" is said when none does. Without it, the largest leakage and the longest wait
        are described as such (never as a problem stage).

    Returns
    -------
    list of Finding
        ``leakage``, ``unknown_stage``, ``waiting`` and ``verification``, each when the
        flow can tell. The least verified stage is named only when its rate is at most
        :data:`MAX_VERIFIED_RATIO` of the other stages' and below it beyond chance; else the
        sentence gives the range and says no stage stands out.

    Examples
    --------
    >>> journey_findings(flow_table(enriched))  # doctest: +SKIP
    """
    rows = flow.filter(pl.col("entered") > 0)
    if rows.height == 0:
        return []
    found = []
    leak = rows.filter(pl.col("leakage") > 0).sort("leakage", descending=True)
    if flags is not None and leak.height:
        found.append(_leak_flag_finding(flags))
    elif leak.height:
        r = leak.row(0, named=True)
        found.append(
            Finding(
                "leakage",
                f"Deals leak most at **{r['stage']}**: {r['leakage']:.0%} of those entering it "
                "end lost or with no decision before moving on.",
            )
        )
    unknown = int(rows["lost_stage_unknown"].sum()) if "lost_stage_unknown" in rows.columns else 0
    if unknown:
        found.append(
            Finding(
                "unknown_stage",
                f"**{unknown:,} lost or no-decision deal{'s' if unknown != 1 else ''}** "
                + (
                    "do not say at which stage they"
                    if unknown != 1
                    else "does not say at which stage it"
                )
                + " ended (the export gives no stage for "
                + ("them): they are" if unknown != 1 else "it): it is")
                + " counted apart, not as leaks at the first stage.",
            )
        )
    slow = rows.drop_nulls("median_days").sort("median_days", descending=True)
    if flags is not None and slow.height and stage_path != "derived":
        found.append(_stall_flag_finding(flags, rows))
    elif slow.height and stage_path != "derived":
        r = slow.row(0, named=True)
        p90 = "" if r["p90_days"] is None else f", slowest 10% over {r['p90_days']:.0f}"
        found.append(
            Finding(
                "waiting",
                f"They wait longest in **{r['stage']}** (median {r['median_days']:.0f} days{p90}).",
            )
        )
    unverified = rows.drop_nulls("verification_rate").sort("verification_rate")
    if not has_evidence:
        found.append(
            Finding(
                "verification",
                "This data holds no buyer actions, so buyer verification cannot be judged.",
            )
        )
    elif unverified.height:
        found.append(_verification_finding(unverified))
    return found


#: A stage is named as the least backed by buyer evidence only when its verification rate
#: is at most this share of the other stages' pooled rate *and* below it beyond chance.
MAX_VERIFIED_RATIO = 0.75


def _verification_finding(unverified: pl.DataFrame, *, alpha: float = 0.05) -> Finding:
    """The least verified stage when it stands out (effect size and a test), else the range.

    ``unverified``: flow rows with a verification rate, least verified first. The test is
    the one-sided two-proportion z of the stage against the other stages pooled, Bonferroni
    over the stages (entries of one deal are not independent, so the effect size carries
    most of the weight).
    """
    from effortlens.normal import normal_sf  # scipy's norm.sf without importing scipy

    r = unverified.row(0, named=True)
    verified = unverified["verification_rate"] * unverified["entered"].cast(pl.Float64)
    n_in, v_in = float(r["entered"]), float(verified[0])
    n_out, v_out = float(unverified["entered"][1:].sum()), float(verified[1:].sum())
    if n_out > 0 and n_in > 0:
        p_in, p_out, pooled = v_in / n_in, v_out / n_out, (v_in + v_out) / (n_in + n_out)
        se = (pooled * (1 - pooled) * (1 / n_in + 1 / n_out)) ** 0.5
        p = normal_sf((p_out - p_in) / se) * unverified.height if se > 0 else 1.0
        if p_out > 0 and p_in <= MAX_VERIFIED_RATIO * p_out and p < alpha:
            return Finding(
                "verification",
                f"**{r['stage']}** is the stage least backed by buyer evidence: only "
                f"{r['verification_rate']:.0%} of entries had a buyer verifier, against "
                f"{p_out:.0%} at the other stages.",
            )
    low, high = unverified["verification_rate"].min(), unverified["verification_rate"].max()
    return Finding(
        "verification",
        f"No stage stands out for lack of buyer evidence: {low:.0%} to {high:.0%} of stage "
        "entries had a buyer verifier.",
    )


# ------------------------------------------------------------------------------------- team


def team_findings(
    enriched: Enriched,
    *,
    present: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    coverage: Coverage | None = None,
) -> list[Finding]:
    """The habits, deviance (response rate) and journey findings of one load, in that order.

    The pattern session's recap and ``effortlens findings`` print these; each page shows the
    same sentences for its own topic, from the same functions.

    Parameters
    ----------
    enriched
        An enriched load, filtered as the page shows it.
    present
        Applied to the deviance table before reps are named (e.g. a page's pseudonymiser).
    coverage
        What the load can say (:func:`effortlens.coverage.data_coverage`, with its load
        report); default: computed from ``enriched`` alone (stage history taken as recorded).

    Returns
    -------
    list of Finding
        First what the data cannot say (topic ``coverage``), then habits and deviance
        findings when there are customer-facing activities and buyer actions, journey
        findings when there is stage history.

    Examples
    --------
    >>> print(findings_text(team_findings(enriched)))  # doctest: +SKIP
    """
    from effortlens.coverage import data_coverage
    from effortlens.deviance import rep_deviance, what_differs
    from effortlens.flow import flow_table, stage_flags
    from effortlens.habits import habit_effects, habits_table

    coverage = coverage or data_coverage(enriched)
    found: list[Finding] = list(coverage.caveats())
    facing = has_rows(events(enriched, "activities").filter(pl.col("is_customer_facing")))
    if facing and coverage.has_buyer_actions:
        found += habits_findings(
            habits_table(enriched),
            effects={f: habit_effects(enriched, feature=f) for f in ("timing", "cadence")},
        )
        deviance = rep_deviance(enriched)
        differs = what_differs(events(enriched, "activities"), deviance)
        shown = present(deviance) if present is not None else deviance
        found += deviance_findings(shown, differs, metric="response_rate")
    if enriched.tables["stage_history"].height:
        found += journey_findings(
            flow_table(enriched, stage_path=coverage.stage_path),
            has_evidence=has_buyer_evidence(enriched),
            stage_path=coverage.stage_path,
            # a snapshot's derived stays are no times, and its unknown-stage losses no leaks
            flags=stage_flags(enriched) if coverage.times_in_stage else None,
        )
    return found


# -------------------------------------------------------------------------------------- ROE

#: The headline return-on-effort figures: metric, higher is better, what it counts.
HEADLINE: tuple[tuple[str, bool, str], ...] = (
    ("activities", True, "Customer-facing activities in the period"),
    ("response_rate", True, "Share of activities with at least one buyer action"),
    ("roe_per_100", True, "Buyer-action weight per 100 customer-facing activities"),
    ("roe_per_hour", True, "Buyer-action weight per customer-facing hour"),
    ("no_impact_share", False, "Share of activities that earned no buyer action"),
)


def roe_headline(
    daily: pl.DataFrame | pl.LazyFrame, *, previous: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Effort, response rate, ROE per 100 and per hour, no-impact share, against before.

    Parameters
    ----------
    daily
        Enriched ``daily`` rows of the period shown.
    previous
        Enriched ``daily`` rows of the equally long period just before (e.g. filtered with
        :meth:`effortlens.filters.Filter.previous_period`); ``None`` or empty: no comparison.

    Returns
    -------
    pl.DataFrame
        One row per :data:`HEADLINE` metric: ``metric``, ``label``, ``value``,
        ``previous`` (null without a previous period), ``change`` (``value - previous``),
        ``higher_is_better``, ``hint``.

    Examples
    --------
    >>> import polars as pl
    >>> now = pl.DataFrame({"is_customer_facing": [True], "activities": [10], "hours": [5.0],
    ...     "responded": [4], "response_weight": [6.0], "no_impact_hours": [3.0]})
    >>> before = now.with_columns(responded=pl.lit(2))
    >>> roe_headline(now, previous=before).row(1, named=True)["change"]
    0.2
    """
    current = roe_by(daily).row(0, named=True)
    before = roe_by(previous).row(0, named=True) if previous is not None and previous.height else {}
    rows = []
    for metric, higher_is_better, hint in HEADLINE:
        value, then = current.get(metric), before.get(metric)
        rows.append(
            {
                "metric": metric,
                "label": METRIC_LABELS[metric],
                "value": None if value is None else float(value),
                "previous": None if then is None else float(then),
                "change": None if value is None or then is None else float(value - then),
                "higher_is_better": higher_is_better,
                "hint": hint,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "label": pl.String,
            "value": pl.Float64,
            "previous": pl.Float64,
            "change": pl.Float64,
            "higher_is_better": pl.Boolean,
            "hint": pl.String,
        },
    )


# ----------------------------------------------------------------------------- organisation


def organisation_findings(
    table: pl.DataFrame,
    shares: pl.DataFrame,
    correlation: dict[str, Any],
    *,
    response_measured: bool = True,
) -> list[Finding]:
    """The team with least selling time, the one losing most people, and the team share.

    Parameters
    ----------
    table
        :func:`effortlens.organisation.organisation_table`.
    shares
        :func:`effortlens.organisation.variance_share` (the ``response_rate`` row is read).
    correlation
        :func:`effortlens.organisation.attrition_vs_selling_time` (``rho``, ``n_teams``).
    response_measured
        False when the data holds no buyer actions: no sentence about response rates.

    Returns
    -------
    list of Finding
        ``selling_time``, ``attrition``, ``attrition_vs_selling_time`` (with four teams or
        more) and ``between_teams`` (when the share could be estimated).

    Examples
    --------
    >>> organisation_findings(organisation_table(enriched), variance_share(enriched.daily),
    ...                       {"rho": None})  # doctest: +SKIP
    """
    if table.height == 0:
        return []
    from effortlens.coverage import UNKNOWN

    found = []
    timed = table.filter(pl.col("selling_time").is_not_nan().fill_null(False))
    if timed.height:
        low = timed.sort("selling_time").row(0, named=True)
        internal = low.get("internal_load")
        load = (
            f" (internal work takes {internal:.0%})"
            if internal is not None and internal == internal
            else ""
        )
        found.append(
            Finding(
                "selling_time",
                f"**{low['team'] or UNKNOWN}** has the least time left for selling: "
                f"{low['selling_time']:.0%} of the working week goes to customers{load}.",
            )
        )
    leaving = table.filter(
        pl.col("annualised_attrition").is_not_nan().fill_null(False)
        & (pl.col("annualised_attrition") > 0)
    )
    if leaving.height:
        high = leaving.sort("annualised_attrition", descending=True).row(0, named=True)
        found.append(
            Finding(
                "attrition",
                f"**{high['team'] or UNKNOWN}** loses the most people by choice "
                f"({high['annualised_attrition']:.0%} a year).",
            )
        )
    rho = correlation.get("rho")
    if rho is not None and rho == rho and correlation.get("n_teams", 0) >= 4:
        found.append(
            Finding(
                "attrition_vs_selling_time",
                f"Across {correlation['n_teams']} teams, selling time and voluntary attrition "
                f"have a rank correlation of {correlation['rho']:+.2f}.",
            )
        )
    row = shares.filter(pl.col("metric") == "response_rate")
    share = row["share_between"][0] if row.height else None
    if share is not None and share == share and response_measured:
        found.append(
            Finding(
                "between_teams",
                f"{row['share_between'][0]:.0%} of the differences in response rate between "
                "reps lie between teams — that part belongs to teams and managers, not "
                "individuals.",
            )
        )
    return found


# ---------------------------------------------------------------------------- interventions


def intervention_verdict(effect: dict[str, Any]) -> str:
    """A plain-words reading of a difference-in-differences result.

    Examples
    --------
    >>> intervention_verdict({"ci_low": 0.01, "ci_high": 0.09})
    'Participants improved more than comparable reps: the intervention is linked to a real rise.'
    >>> intervention_verdict({"ci_low": -0.02, "ci_high": 0.05})[:9]
    'No change'
    """
    low, high = effect["ci_low"], effect["ci_high"]
    if low is None or high is None:
        return "Not enough comparable reps to judge this intervention."
    if low > 0:
        return (
            "Participants improved more than comparable reps: "
            "the intervention is linked to a real rise."
        )
    if high < 0:
        return "Participants did worse than comparable reps after the start."
    return "No change that can be told apart from chance: the interval includes zero."


def effect_text(effect: dict[str, Any]) -> str:
    """One line for a difference-in-differences result.

    Response rates read in percentage points, other metrics in their own units.

    Examples
    --------
    >>> effect_text({"metric": "response_rate", "estimate": 0.041, "ci_low": 0.012,
    ...              "ci_high": 0.07, "n_treated": 14, "n_control": 40, "window_weeks": 12,
    ...              "start_date": "2025-07-07"})
    'difference-in-differences +4.1 pts (95% CI +1.2 pts to +7.0 pts), 14 participants vs 40 comparison reps, 12 weeks either side of 2025-07-07'
    """  # noqa: E501
    scale, unit, digits = (100, " pts", 1) if effect["metric"] == "response_rate" else (1, "", 2)

    def number(value: float) -> str:
        return f"{scale * value:+.{digits}f}{unit}"

    return (
        f"difference-in-differences {number(effect['estimate'])} "
        f"(95% CI {number(effect['ci_low'])} to {number(effect['ci_high'])}), "
        f"{effect['n_treated']} participants vs {effect['n_control']} comparison reps, "
        f"{effect['window_weeks']} weeks either side of {effect['start_date']}"
    )


def intervention_findings(effect: dict[str, Any]) -> list[Finding]:
    """The verdict on an intervention and its estimate with interval, in words.

    Parameters
    ----------
    effect
        :func:`effortlens.interventions.intervention_effect`.

    Returns
    -------
    list of Finding
        One ``intervention`` finding: the stressed verdict, then the estimate.

    Examples
    --------
    >>> intervention_findings(intervention_effect(enriched, intervention_id="I1"))  # doctest: +SKIP
    """
    text = f"**{intervention_verdict(effect)}** {effect_text(effect)}."
    pre = pre_trend_text(effect)
    if pre:
        text += f" {pre}"
    if effect.get("n_unmatched"):
        n = effect["n_unmatched"]
        text += (
            f" {n} participant{'s' if n != 1 else ''} had no non-participant in their peer "
            "group and could not be compared."
        )
    found = [Finding("intervention", text)]
    if effect.get("estimand"):
        found.append(Finding("intervention", f"What this measures: {effect['estimand']}", True))
    return found


def pre_trend_text(effect: dict[str, Any]) -> str:
    """The placebo check beside the estimate: did the groups move alike before the start?

    Examples
    --------
    >>> pre_trend_text({"metric": "response_rate", "pre_trend": 0.002,
    ...                 "pre_trend_low": -0.011, "pre_trend_high": 0.015})
    'Before the start, participants and comparison moved alike (+0.2 pts, ±1.3 pts).'
    """
    if effect.get("pre_trend") is None:
        return ""
    scale, unit, digits = (100, " pts", 1) if effect["metric"] == "response_rate" else (1, "", 2)
    value = scale * effect["pre_trend"]
    half = scale * (effect["pre_trend_high"] - effect["pre_trend_low"]) / 2
    shown = f"{value:+.{digits}f}{unit}, ±{half:.{digits}f}{unit}"
    if effect["pre_trend_low"] <= 0 <= effect["pre_trend_high"]:
        return f"Before the start, participants and comparison moved alike ({shown})."
    return (
        f"Caution: before the start, participants and comparison already moved apart "
        f"({shown}), so part of the estimate may be a trend of their own. (This check also "
        "fires by chance: in about 1 in 10 data sets with no such trend, VALIDITY.md; the "
        "weekly lines before the start show how far apart they moved.)"
    )


# ----------------------------------------------------------------------------------- mirror


def mirror_findings(summary: pl.DataFrame, *, rep_label: str) -> list[Finding]:
    """A rep's response rate this week against the median of their peers, in words.

    Parameters
    ----------
    summary
        :func:`effortlens.mirror.rep_mirror` of the rep.
    rep_label
        How the rep is named (their name, or a pseudonym).

    Returns
    -------
    list of Finding
        One ``mirror`` finding, or none when the week or the peers have no response rate.

    Examples
    --------
    >>> summary = rep_mirror(enriched.daily, reps=enriched.reps, rep_id="r007")  # doctest: +SKIP
    >>> mirror_findings(summary, rep_label="Ann")  # doctest: +SKIP
    """
    row = summary.filter(pl.col("metric") == "response_rate")
    if row.height == 0:
        return []
    r = row.row(0, named=True)
    value, peer = r.get("value"), r.get("peer_median")
    if value is None or peer is None:
        return []
    side = "above" if value >= peer else "below"
    peers = r.get("peers") or 0
    return [
        Finding(
            "mirror",
            f"Week of **{r['week']}**: {rep_label} answered by buyers on **{value:.0%}** of "
            f"touches — {side} the peer median of {peer:.0%} "
            f"({peers} peer{'' if peers == 1 else 's'}).",
        )
    ]
