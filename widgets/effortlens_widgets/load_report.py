"""The load report view: is the data sound, what was quarantined and why.

It shows what :func:`effortlens.loading.load_folder` reported and counts nothing itself.
"""

from __future__ import annotations

import ipywidgets as widgets
import polars as pl
from traitlets import Any, Bool, Int, TraitError, Unicode, observe, validate

from effortlens_widgets._html import CSS, escape, number, table

_REPORT_LABELS = {"read": "rows read", "loaded": "loaded", "quarantined": "quarantined"}
_ROW_COLUMNS = ("table", "row", "column", "message", "raw")


class LoadReportView(widgets.VBox):
    """Headline, per-table report, quarantine by table × reason, quarantined rows, notes.

    Set ``value`` to a :class:`effortlens.loading.LoadedData` (or link it to a
    :class:`~effortlens_widgets.DataSourceLoader`); pick a reason to list its rows.

    Examples
    --------
    >>> from effortlens.loading import load_folder
    >>> view = LoadReportView(value=load_folder("sample_data/generated/default"))  # doctest: +SKIP
    >>> view.sound, view.reason  # doctest: +SKIP
    (True, '')
    """

    value = Any(None, allow_none=True, help="The LoadedData shown, or None before a load.")
    reason = Unicode(
        "", help="Quarantine reason code whose rows are listed; '' when nothing is quarantined."
    )
    max_rows = Int(15, min=1, help="How many quarantined rows of the chosen reason to list.")
    sound = Bool(
        False, read_only=True, help="True when data is shown and every row read was loaded."
    )

    def __init__(self, **kwargs) -> None:
        """Build the report; it shows ``value`` when given, else "No data loaded yet"."""
        self._headline = widgets.HTML()
        self._tables = widgets.HTML()
        self._by_reason = widgets.HTML()
        self._reason_picker = widgets.Dropdown(
            description="Show rows for", style={"description_width": "initial"}
        )
        self._rows = widgets.HTML()
        self._notes = widgets.HTML()
        self._quarantine_box = widgets.VBox([self._by_reason, self._reason_picker, self._rows])
        super().__init__(**kwargs)
        self.add_class("el-view")
        # the picker holds None while it has no options; the trait holds ''
        widgets.link(
            (self._reason_picker, "value"),
            (self, "reason"),
            transform=(lambda picked: picked or "", lambda reason: reason or None),
        )
        self.children = [
            widgets.HTML(CSS),
            self._headline,
            self._tables,
            self._quarantine_box,
            self._notes,
        ]
        self._refresh()

    @validate("reason")
    def _valid_reason(self, proposal):
        reason = proposal["value"] or ""
        known = self._reasons()
        if reason and reason not in known:
            raise TraitError(f"no row was quarantined for {reason!r}; reasons: {list(known)}")
        return reason

    @observe("value")
    def _on_value(self, change) -> None:
        self._refresh()

    @observe("reason", "max_rows")
    def _on_reason(self, change) -> None:
        self._show_rows()

    def _reasons(self) -> dict[str, int]:
        """Reason code to quarantined row count, largest first, from the load report."""
        if self.value is None:
            return {}
        counts: dict[str, int] = {}
        for entry in self.value.report.to_dict().values():
            for code, n in entry["quarantined"].items():
                if n:
                    counts[code] = counts.get(code, 0) + n
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def _refresh(self) -> None:
        """Redraw every part from ``value``; the one place the view is rebuilt."""
        with self.hold_sync():
            if self.value is None:
                self.set_trait("sound", False)
                self._headline.value = (
                    '<div class="el-headline el-warn"><h2>No data loaded yet</h2>'
                    "<p>Choose a data folder and press Load.</p></div>"
                )
                self._tables.value = self._notes.value = ""
                self._quarantine_box.layout.display = "none"
                self._reason_picker.options = []
                self.reason = ""
                return
            reasons = self._reasons()
            report = self.value.report.to_frame()
            self.set_trait("sound", not reasons)
            # an export's report also counts per source file: each export row once there,
            # derived records apart (summing tables would count a bad deal and its derived
            # stage rows twice)
            files = getattr(self.value.report, "files", ())
            if files:
                self._headline.value = _files_headline(
                    self.value.report.files_frame(), reasons, self.value.missing_tables
                )
                self._tables.value = (
                    '<div class="el-section">What was read, file by file</div>'
                    + _files_report(self.value.report.files_frame())
                    + '<div class="el-section">… and the records of each table (derived '
                    "ones included)</div>" + _table_report(report, total=False)
                )
            else:
                self._headline.value = _headline(report, reasons, self.value.missing_tables)
                self._tables.value = (
                    '<div class="el-section">What was read, table by table</div>'
                    + _table_report(report)
                )
            self._quarantine_box.layout.display = None if reasons else "none"
            self._by_reason.value = _by_reason(self.value.report.to_dict(), reasons)
            self.reason = ""
            self._reason_picker.options = [
                (f"{code} ({number(n)} rows)", code) for code, n in reasons.items()
            ]
            self.reason = next(iter(reasons), "")
            self._notes.value = _notes(self.value.report.notes)
            self._show_rows()

    def _show_rows(self) -> None:
        if self.value is None or not self.reason:
            self._rows.value = ""
            return
        rows = self.value.quarantine.filter(pl.col("reason") == self.reason)
        shown = rows.head(self.max_rows).select([c for c in _ROW_COLUMNS if c in rows.columns])
        more = rows.height - shown.height
        tail = (
            f'<p class="el-muted">… and {number(more)} more rows with this reason.</p>'
            if more > 0
            else ""
        )
        self._rows.value = table(shown, raw_columns=("raw",)) + tail


def _headline(report: pl.DataFrame, reasons: dict[str, int], missing) -> str:
    provided = report.filter(~pl.col("missing"))
    read = int(provided["read"].sum())
    loaded = int(provided["loaded"].sum())
    quarantined = sum(reasons.values())
    tables = provided.height
    absent = f" Not provided (optional): {escape(', '.join(missing))}." if len(missing) else ""
    if not quarantined:
        return (
            '<div class="el-headline el-sound"><h2>The data is sound</h2>'
            f"<p>All {number(read)} rows read from {tables} tables were loaded; "
            f"none was quarantined.{absent}</p></div>"
        )
    hit = report.filter(pl.col("quarantined") > 0).height
    return (
        '<div class="el-headline el-warn">'
        f"<h2>{number(quarantined)} rows were quarantined</h2>"
        f"<p>{number(loaded)} of {number(read)} rows read from {tables} tables were loaded. "
        f"The rest were set aside in {hit} table{'s' if hit != 1 else ''} for "
        f"{len(reasons)} reason{'s' if len(reasons) != 1 else ''}, listed below with "
        f"the rows themselves.{absent}</p></div>"
    )


def _files_headline(files: pl.DataFrame, reasons: dict[str, int], missing) -> str:
    """The headline of an export's load: export rows read, loaded and quarantined, each once."""
    real = files.filter(~pl.col("derived"))
    read, loaded = int(real["read"].sum()), int(real["loaded"].sum())
    quarantined = int(real["quarantined"].sum())
    derived = int(files.filter(pl.col("derived"))["read"].sum())
    made = f" {number(derived)} records were derived (not read), listed apart." if derived else ""
    absent = f" Not provided (optional): {escape(', '.join(missing))}." if len(missing) else ""
    n_files = f"{real.height} file{'s' if real.height != 1 else ''}"
    if not reasons:
        return (
            '<div class="el-headline el-sound"><h2>The data is sound</h2>'
            f"<p>All {number(read)} rows read from {n_files} were loaded; none was "
            f"quarantined.{made}{absent}</p></div>"
        )
    return (
        '<div class="el-headline el-warn">'
        f"<h2>{number(quarantined)} of {number(read)} export rows were quarantined</h2>"
        f"<p>{number(loaded)} of {number(read)} rows read from {n_files} were loaded. The "
        f"rest were set aside for {len(reasons)} reason{'s' if len(reasons) != 1 else ''}, "
        f"listed below with the rows themselves.{made}{absent}</p></div>"
    )


def _files_report(files: pl.DataFrame) -> str:
    shown = files.with_columns(
        pl.when(pl.col("derived"))
        .then(pl.col("tables") + " (derived, not read)")
        .otherwise(pl.col("tables"))
        .alias("went to")
    ).drop("derived", "tables")
    real = files.filter(~pl.col("derived"))
    total = pl.DataFrame(
        {
            "file": ["all export files"],
            **{c: [real[c].sum()] for c in ("read", "loaded", "quarantined")},
        }
    ).cast(shown.select("read", "loaded", "quarantined").schema, strict=False)
    return table(
        pl.concat([shown, total], how="diagonal_relaxed"), labels=_REPORT_LABELS, total_row=True
    )


def _table_report(report: pl.DataFrame, *, total: bool = True) -> str:
    shown = report.with_columns(
        pl.when(pl.col("missing"))
        .then(pl.lit("not provided"))
        .otherwise(pl.col("file"))
        .alias("file")
    ).drop("missing")
    provided = report.filter(~pl.col("missing"))
    total_row = pl.DataFrame(
        {
            "table": ["all tables"],
            "file": [""],
            **{c: [provided[c].sum()] for c in ("read", "loaded", "quarantined")},
        }
    ).cast(shown.select("read", "loaded", "quarantined").schema, strict=False)
    if not total:  # records of several tables do not add up to rows read
        return table(shown, labels=_REPORT_LABELS)
    return table(
        pl.concat([shown, total_row], how="diagonal_relaxed"),
        labels=_REPORT_LABELS,
        total_row=True,
    )


def _by_reason(report: dict, reasons: dict[str, int]) -> str:
    records = [
        {"table": name, "reason": code, "rows": n}
        for name, entry in report.items()
        for code, n in entry["quarantined"].items()
        if n
    ]
    if not records:
        return ""
    crosstab = pl.DataFrame(records).pivot(
        on="reason", on_columns=list(reasons), index="table", values="rows"
    )  # a table × reason pair with no row stays empty (shown as a dash) so counts stand out
    return '<div class="el-section">Quarantined rows by table and reason</div>' + table(
        crosstab, labels={code: code for code in reasons}
    )


def _notes(notes) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f'<div class="el-section">Notes</div><ul class="el-notes">{items}</ul>'
