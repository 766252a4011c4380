"""The load report view: is the data sound, what was quarantined and why.

It shows what :func:`effortlens.loading.load_folder` reported and counts nothing itself. Its
state is public (``headline``, ``reasons``, ``frames``, ``more``, ``sound``); the children
only draw it.
"""

from __future__ import annotations

from contextlib import ExitStack

import ipywidgets as widgets
import polars as pl
from traitlets import Any, Bool, Dict, Int, TraitError, Unicode, observe, validate

from effortlens_widgets._html import CSS, escape, number, table

_REPORT_LABELS = {"read": "rows read", "loaded": "loaded", "quarantined": "quarantined"}
# an export text file's physical lines, counted apart from the reader (SourceReport.files_frame)
_REPORT_LABELS |= {"lines": "physical lines", "rows": "rows in the file"}
_ROW_COLUMNS = ("table", "row", "column", "message", "raw")
_NO_DATA = ("No data loaded yet", "Choose a data folder and press Load.")


class LoadReportView(widgets.VBox):
    """Headline, per-table report, quarantine by table × reason, quarantined rows, notes.

    Set ``value`` to a :class:`effortlens.loading.LoadedData` (or link it to a
    :class:`~effortlens_widgets.DataSourceLoader`); pick a reason to list its rows. What the
    view shows is in its read-only traits: ``headline`` (the words), ``reasons`` (rows set
    aside per reason), ``frames`` (the Polars frames behind each table), ``more`` and ``sound``.

    Examples
    --------
    >>> from effortlens.loading import load_folder
    >>> view = LoadReportView(value=load_folder("sample_data/generated/default"))  # doctest: +SKIP
    >>> view.sound, view.reason, view.headline[:17]  # doctest: +SKIP
    (True, '', 'The data is sound')
    >>> view.frame.columns  # doctest: +SKIP
    ['table', 'file', 'read', 'loaded', 'quarantined']
    """

    value = Any(None, allow_none=True, help="The LoadedData shown, or None before a load.")
    reason = Unicode(
        "", help="Quarantine reason code whose rows are listed; '' when nothing is quarantined."
    )
    max_rows = Int(15, min=1, help="How many quarantined rows of the chosen reason to list.")
    sound = Bool(
        False, read_only=True, help="True when data is shown and every row read was loaded."
    )
    headline = Unicode(
        "",
        read_only=True,
        help="What the report says first, in words: its title and sentence ('The data is "
        "sound. All … rows …', '… rows were quarantined. …' or 'No data loaded yet. …').",
    )
    reasons = Dict(
        read_only=True,
        help="Quarantine reason code to the rows set aside for it, largest first ({} when "
        "nothing was quarantined or nothing is loaded).",
    )
    frames = Dict(
        read_only=True,
        help="The Polars frames the report shows, by name: 'tables' (rows per table, with a "
        "total row when the tables add up), 'files' (rows per export file, for an export), "
        "'by_reason' (table × reason counts) and 'rows' (the listed rows of ``reason``); "
        "{} before a load.",
    )
    more = Int(
        0, read_only=True, help="Quarantined rows of ``reason`` beyond the ``max_rows`` listed."
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

    @property
    def frame(self) -> pl.DataFrame | None:
        """The per-table report as shown (``frames['tables']``), or None before a load."""
        return self.frames.get("tables")

    @validate("reason")
    def _valid_reason(self, proposal):
        reason = proposal["value"] or ""
        if reason and reason not in self.reasons:
            raise TraitError(
                f"no row was quarantined for {reason!r}; reasons: {list(self.reasons)}"
            )
        return reason

    @observe("value")
    def _on_value(self, change) -> None:
        self._refresh()

    @observe("reason", "max_rows")
    def _on_reason(self, change) -> None:
        self._show_rows()

    def _say(self, title: str, sentence: str, *, sound: bool) -> None:
        self.set_trait("headline", f"{title}. {sentence}")
        self._headline.value = (
            f'<div class="el-headline {"el-sound" if sound else "el-warn"}">'
            f"<h2>{escape(title)}</h2><p>{escape(sentence)}</p></div>"
        )

    def _refresh(self) -> None:
        """Redraw every part from ``value``; the one place the view is rebuilt.

        Each part is a widget of its own, synced by a message of its own: their messages are
        held until the whole report is drawn, then sent together, the headline last, so the
        page never shows a new headline or table beside the old (or no) reasons and rows.
        """
        parts = (
            self._headline,
            self._tables,
            self._quarantine_box.layout,
            self._by_reason,
            self._reason_picker,
            self._rows,
            self._notes,
        )
        with ExitStack() as held:
            for part in (self, *parts):  # released in the reverse order: the headline last
                held.enter_context(part.hold_sync())
            self._draw()

    def _draw(self) -> None:
        """Draw every part from ``value`` (their messages held by :meth:`_refresh`)."""
        if self.value is None:
            self.set_trait("sound", False)
            self.set_trait("reasons", {})
            self.set_trait("frames", {})
            self._say(*_NO_DATA, sound=False)
            self._tables.value = self._notes.value = ""
            self._quarantine_box.layout.display = "none"
            self.reason = ""
            self._reason_picker.options = []
            return
        report = self.value.report
        reasons = _reasons(report.to_dict())
        # physical lines neither read nor accounted for (rows lost in reading): a problem
        lost = report.lines_not_read() if hasattr(report, "lines_not_read") else []
        self.set_trait("reasons", reasons)
        self.set_trait("sound", not reasons and not lost)
        frames: dict[str, pl.DataFrame] = {}
        # an export's report also counts per source file: each export row once there,
        # derived records apart (summing tables would count a bad deal and its derived
        # stage rows twice)
        if getattr(report, "files", ()):
            frames["tables"] = _table_report(report.to_frame(), total=False)
            frames["files"] = _files_report(report.files_frame())
            said = _files_headline(report.files_frame(), reasons, self.value.missing_tables)
            self._say(*_with_lost(said, lost, reasons), sound=self.sound)
            self._tables.value = (
                '<div class="el-section">What was read, file by file</div>'
                + table(frames["files"], labels=_REPORT_LABELS, total_row=True)
                + '<div class="el-section">… and the records of each table (derived '
                "ones included)</div>" + table(frames["tables"], labels=_REPORT_LABELS)
            )
        else:
            frames["tables"] = _table_report(report.to_frame())
            said = _headline(report.to_frame(), reasons, self.value.missing_tables)
            self._say(*_with_lost(said, lost, reasons), sound=self.sound)
            self._tables.value = (
                '<div class="el-section">What was read, table by table</div>'
                + table(frames["tables"], labels=_REPORT_LABELS, total_row=True)
            )
        by_reason = _by_reason(report.to_dict(), reasons)
        if by_reason is not None:
            frames["by_reason"] = by_reason
        self.set_trait("frames", frames)
        self._quarantine_box.layout.display = None if reasons else "none"
        self._by_reason.value = (
            '<div class="el-section">Quarantined rows by table and reason</div>'
            + table(by_reason, labels={code: code for code in reasons})
            if by_reason is not None
            else ""
        )
        self.reason = ""
        self._reason_picker.options = [
            (f"{code} ({number(n)} rows)", code) for code, n in reasons.items()
        ]
        self.reason = next(iter(reasons), "")
        self._notes.value = _lost(lost) + _notes(report.notes)
        self._show_rows()

    def _show_rows(self) -> None:
        frames = {name: frame for name, frame in self.frames.items() if name != "rows"}
        if self.value is None or not self.reason:
            self.set_trait("more", 0)
            self.set_trait("frames", frames)
            self._rows.value = ""
            return
        rows = self.value.quarantine.filter(pl.col("reason") == self.reason)
        count = rows.height
        if not getattr(self.value, "quarantine_complete", True):
            # a large build's quarantine: the kernel holds the first rows of each reason, the
            # report counts them all, the build's file holds the rest
            count = self.reasons.get(self.reason, count)
            if rows.height < min(self.max_rows, count):
                rows = (
                    pl.scan_parquet(self.value.quarantine_file)
                    .filter(pl.col("reason") == self.reason)
                    .head(self.max_rows)
                    .collect()
                )
        shown = rows.head(self.max_rows).select([c for c in _ROW_COLUMNS if c in rows.columns])
        self.set_trait("more", count - shown.height)
        self.set_trait("frames", {**frames, "rows": shown})
        tail = (
            f'<p class="el-muted">… and {number(self.more)} more rows with this reason.</p>'
            if self.more > 0
            else ""
        )
        self._rows.value = table(shown, raw_columns=("raw",)) + tail


def _reasons(report: dict) -> dict[str, int]:
    """Reason code to quarantined row count, largest first, from the load report."""
    counts: dict[str, int] = {}
    for entry in report.values():
        for code, n in entry["quarantined"].items():
            if n:
                counts[code] = counts.get(code, 0) + n
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _headline(report: pl.DataFrame, reasons: dict[str, int], missing) -> tuple[str, str]:
    provided = report.filter(~pl.col("missing"))
    read = int(provided["read"].sum())
    loaded = int(provided["loaded"].sum())
    quarantined = sum(reasons.values())
    tables = provided.height
    absent = f" Not provided (optional): {', '.join(missing)}." if len(missing) else ""
    if not quarantined:
        return (
            "The data is sound",
            f"All {number(read)} rows read from {tables} tables were loaded; "
            f"none was quarantined.{absent}",
        )
    hit = report.filter(pl.col("quarantined") > 0).height
    return (
        f"{number(quarantined)} rows were quarantined",
        f"{number(loaded)} of {number(read)} rows read from {tables} tables were loaded. "
        f"The rest were set aside in {hit} table{'s' if hit != 1 else ''} for "
        f"{len(reasons)} reason{'s' if len(reasons) != 1 else ''}, listed below with "
        f"the rows themselves.{absent}",
    )


def _files_headline(files: pl.DataFrame, reasons: dict[str, int], missing) -> tuple[str, str]:
    """The headline of an export's load: export rows read, loaded and quarantined, each once."""
    real = files.filter(~pl.col("derived"))
    read, loaded = int(real["read"].sum()), int(real["loaded"].sum())
    quarantined = int(real["quarantined"].sum())
    derived = int(files.filter(pl.col("derived"))["read"].sum())
    made = f" {number(derived)} records were derived (not read), listed apart." if derived else ""
    absent = f" Not provided (optional): {', '.join(missing)}." if len(missing) else ""
    n_files = f"{real.height} file{'s' if real.height != 1 else ''}"
    if not reasons:
        return (
            "The data is sound",
            f"All {number(read)} rows read from {n_files} were loaded; none was "
            f"quarantined.{made}{absent}",
        )
    return (
        f"{number(quarantined)} of {number(read)} export rows were quarantined",
        f"{number(loaded)} of {number(read)} rows read from {n_files} were loaded. The "
        f"rest were set aside for {len(reasons)} reason{'s' if len(reasons) != 1 else ''}, "
        f"listed below with the rows themselves.{made}{absent}",
    )


def _files_report(files: pl.DataFrame) -> pl.DataFrame:
    """Rows per export file as shown, derived records named so, with a total of real files."""
    shown = files.with_columns(
        pl.when(pl.col("derived"))
        .then(pl.col("tables") + " (derived, not read)")
        .otherwise(pl.col("tables"))
        .alias("went to")
    ).drop("derived", "tables")
    real = files.filter(~pl.col("derived"))
    counts = [c for c in shown.columns if c not in ("file", "went to")]  # lines, rows read…
    total = pl.DataFrame(
        {"file": ["all export files"], **{c: [real[c].sum()] for c in counts}}
    ).cast(shown.select(counts).schema, strict=False)
    return pl.concat([shown, total], how="diagonal_relaxed")


def _table_report(report: pl.DataFrame, *, total: bool = True) -> pl.DataFrame:
    """Rows per table as shown; with ``total`` a last row of all provided tables."""
    shown = report.with_columns(
        pl.when(pl.col("missing"))
        .then(pl.lit("not provided"))
        .otherwise(pl.col("file"))
        .alias("file")
    ).drop("missing")
    if not total:  # records of several tables do not add up to rows read
        return shown
    provided = report.filter(~pl.col("missing"))
    total_row = pl.DataFrame(
        {
            "table": ["all tables"],
            "file": [""],
            **{c: [provided[c].sum()] for c in ("read", "loaded", "quarantined")},
        }
    ).cast(shown.select("read", "loaded", "quarantined").schema, strict=False)
    return pl.concat([shown, total_row], how="diagonal_relaxed")


def _by_reason(report: dict, reasons: dict[str, int]) -> pl.DataFrame | None:
    """Quarantined rows by table × reason, or None when nothing was quarantined."""
    records = [
        {"table": name, "reason": code, "rows": n}
        for name, entry in report.items()
        for code, n in entry["quarantined"].items()
        if n
    ]
    if not records:
        return None
    # a table × reason pair with no row stays empty (shown as a dash) so counts stand out
    return pl.DataFrame(records).pivot(
        on="reason", on_columns=list(reasons), index="table", values="rows"
    )


def _with_lost(said: tuple[str, str], lost: list[str], reasons) -> tuple[str, str]:
    """The headline, saying so when physical lines of the files were not read."""
    if not lost:
        return said
    title, sentence = said
    if not reasons:
        title = "Lines of the files were not read"
    n = len(lost)
    return title, (
        f"{sentence} {n} file{'s' if n != 1 else ''} had physical lines that were neither "
        "read nor blank nor inside quoted values: rows may be missing (listed below)."
    )


def _lost(lost: list[str]) -> str:
    if not lost:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lost)
    return f'<div class="el-section">Lines not read</div><ul class="el-notes">{items}</ul>'


def _notes(notes) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(note)}</li>" for note in notes)
    return f'<div class="el-section">Notes</div><ul class="el-notes">{items}</ul>'
