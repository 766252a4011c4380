"""Small HTML pieces shared by the views: one stylesheet, tidy tables, message boxes.

Everything a user's data puts on the page passes through :func:`html.escape` here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import polars as pl

#: Injected once per view; class names are prefixed ``el-`` so they never clash with Voilà's.
CSS = """<style>
.el-view { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; }
.el-headline { padding: 14px 18px; border-radius: 8px; margin: 4px 0 12px 0; }
.el-headline h2 { margin: 0 0 4px 0; font-size: 1.35em; font-weight: 600; }
.el-headline p { margin: 0; color: #3e4c59; }
.el-sound { background: #e8f5ee; border-left: 6px solid #1b7f4b; }
.el-warn { background: #fff6e0; border-left: 6px solid #b7791f; }
.el-error { background: #fdecec; border-left: 6px solid #b42318; padding: 12px 16px;
  border-radius: 8px; margin: 6px 0; }
.el-error strong { display: block; margin-bottom: 4px; }
.el-muted { color: #616e7c; }
.el-section { font-size: 1.05em; font-weight: 600; margin: 14px 0 6px 0; }
.el-table { border-collapse: collapse; font-size: 0.92em; margin: 2px 0 8px 0; }
.el-table th { text-align: left; font-weight: 600; color: #3e4c59; background: #f5f7fa;
  border-bottom: 2px solid #cbd2d9; padding: 5px 12px; }
.el-table td { border-bottom: 1px solid #e4e7eb; padding: 4px 12px; vertical-align: top;
  line-height: 1.4; }
.el-table td.el-num, .el-table th.el-num { text-align: right; font-variant-numeric: tabular-nums; }
.el-table td.el-raw { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em;
  line-height: 1.3; color: #52606d; max-width: 40em; overflow-wrap: anywhere; }
.el-table tr.el-total td { font-weight: 600; border-top: 2px solid #cbd2d9; }
.el-notes { margin: 2px 0 8px 0; padding-left: 1.3em; }
</style>"""


def escape(value: object) -> str:
    """Text safe to put in HTML; ``None`` shows as an em dash."""
    if value is None:
        return "—"
    return html.escape(str(value))


def number(value: object) -> str:
    """A count with thousands separators (``12,345``); ``None`` as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}" if isinstance(value, int | float) else escape(value)


def table(
    frame: pl.DataFrame,
    *,
    labels: dict[str, str] | None = None,
    raw_columns: Iterable[str] = (),
    total_row: bool = False,
) -> str:
    """Render a small frame as an HTML table: numbers right-aligned, text escaped.

    Parameters
    ----------
    frame
        At most a few dozen rows; callers cut larger frames first.
    labels
        Column name to header text; other columns show their name with spaces for ``_``.
    raw_columns
        Columns shown in a monospace font (raw file content).
    total_row
        Style the last row as a total.

    Examples
    --------
    >>> table(pl.DataFrame({"table": ["reps"], "read": [1200]}))[:24]
    '<table class="el-table">'
    """
    labels = labels or {}
    raw = set(raw_columns)
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric()}

    def cell_class(name: str) -> str:
        if name in numeric:
            return ' class="el-num"'
        return ' class="el-raw"' if name in raw else ""

    head = "".join(
        f"<th{cell_class(name) if name in numeric else ''}>"
        f"{escape(labels.get(name, name.replace('_', ' ')))}</th>"
        for name in frame.columns
    )
    rows = []
    last = frame.height - 1
    for i, row in enumerate(frame.iter_rows(named=True)):
        cells = "".join(
            f"<td{cell_class(name)}>{number(value) if name in numeric else escape(value)}</td>"
            for name, value in row.items()
        )
        attr = ' class="el-total"' if total_row and i == last else ""
        rows.append(f"<tr{attr}>{cells}</tr>")
    body = "".join(rows)
    return f'<table class="el-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def error_box(title: str, message: str) -> str:
    """A readable failure message for the page (never a traceback)."""
    return f'<div class="el-error"><strong>{escape(title)}</strong>{escape(message)}</div>'
