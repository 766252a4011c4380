"""One entry point for any folder: detect (or be told) the format, then load it.

Also the text the command line prints (``effortlens detect``, ``mapping-template``, ``load``),
so that the commands stay thin shells over tested functions.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from effortlens.adapters.accounting import SourceReport, with_lines
from effortlens.adapters.detect import FORMATS, Detection, classify, detect_format, mapping_file
from effortlens.adapters.mapping import Mapping, MappingError, load_mapping
from effortlens.adapters.reading import Context


def _context(settings, mapping: Mapping | None) -> Context:
    if mapping is None:
        return Context(settings=settings, timezone=settings.timezone)
    return mapping.context(settings)


def load_any(
    folder: str | Path,
    *,
    settings=None,
    mapping: str | Path | None = None,
    format: str | None = None,  # noqa: A002 - the word users know
    now: datetime | None = None,
):
    """Load a folder of canonical files, Salesforce or HubSpot exports, or mapped CSVs.

    Parameters
    ----------
    folder
        The data folder.
    settings
        Validated settings (default: the defaults).
    mapping
        A mapping file. With a generic mapping the folder is read through it; with a mapping
        whose ``[source] format`` is ``salesforce`` or ``hubspot`` (or with ``format`` given),
        its value maps and source conventions apply to that CRM's exports. Default: the
        folder's own ``mapping.toml`` when it has one.
    format
        Override detection: ``"canonical"``, ``"salesforce"``, ``"hubspot"`` or ``"mapping"``.
    now
        Load time (timestamps after it are quarantined). Default: now.

    Returns
    -------
    effortlens.loading.LoadedData
        Canonical tables, quarantine and load report (with notes on what was derived).

    Raises
    ------
    effortlens.loading.DataError
        When the format cannot be recognised (the message says what each format needs) or
        required data is missing.
    MappingError
        When the mapping is invalid (file and key named).

    Whatever the files hold, nothing else is raised: an unreadable file or folder is a
    ``DataError``, and a failure of EffortLens itself (a Polars panic included) a
    :class:`~effortlens.loading.report.LoadBug` naming the folder or file. The load runs
    within the settings' ``[limits]`` (:mod:`effortlens.loading.guard`).

    Examples
    --------
    >>> from effortlens.settings import load_settings
    >>> # data = load_any("exports/", settings=load_settings())
    >>> # data = load_any("pipeline/", settings=load_settings(), mapping="pipeline/mapping.toml")
    """
    from effortlens.loading import guard
    from effortlens.settings import load_settings

    settings = settings if settings is not None else load_settings()
    folder = Path(folder)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    with guard.load_scope(settings.limits) as scope, guard.guarded(str(folder)):
        before, scope.lines = scope.lines, {}  # the lines of this load's files only
        try:
            data = _load_any(folder, settings=settings, mapping=mapping, format=format, now=now)
        finally:
            lines, scope.lines = scope.lines, {**before, **scope.lines}
        report = data.report
        if isinstance(report, SourceReport):  # each export file's lines beside its rows
            report = with_lines(report, lines)
        extra = tuple(n for n in scope.notes if n not in report.notes)
        if extra:
            report = replace(report, notes=report.notes + extra)
        return data if report is data.report else replace(data, report=report)


def _load_any(folder: Path, *, settings, mapping, format, now):  # noqa: A002
    """:func:`load_any` inside its load scope."""
    from effortlens.loading import DataError, load_folder

    detection = detect_format(folder)
    mapping_path = (
        Path(mapping)
        if mapping is not None
        else (mapping_file(folder) if folder.is_dir() else None)
    )
    parsed = load_mapping(mapping_path, settings=settings) if mapping_path else None

    chosen = format or (parsed.format if parsed else None)
    if chosen is None:
        # a mapping with tables reads the folder; one with value maps only serves the CRM
        chosen = "mapping" if parsed is not None and parsed.tables else detection.format
    if chosen is None:
        raise DataError(detection.to_text())

    if chosen == "mapping":
        if parsed is None:
            raise DataError(
                f"{folder}: format 'mapping' needs a mapping file (write one with "
                "`effortlens mapping-template DIR > DIR/mapping.toml`)"
            )
        from effortlens.adapters.generic import load_mapped

        return load_mapped(parsed, folder, settings=settings, now=now)
    if chosen == "canonical":
        return load_folder(folder, settings=settings, now=now)

    if detection.unreadable and chosen in ("salesforce", "hubspot"):
        raise DataError("\n".join(detection.unreadable))  # their rows would be lost unsaid
    if detection.incomplete and chosen == "salesforce":
        raise DataError(
            f"{folder}: Salesforce export files lack a column EffortLens cannot do without; "
            "export these fields too and load again:\n"
            + "\n".join(f"  - {line}" for line in detection.incomplete)
        )
    files = detection.files if detection.format == chosen else _files_of(folder, chosen)
    if not files:
        raise DataError(f"{folder}: no {chosen} export recognised; " + detection.to_text())
    ctx = _context(settings, parsed)
    if detection.format == chosen:  # a file not read is said, never silently left out
        ctx.note(*(f"ignored file {line}" for line in detection.ignored))
    if chosen == "salesforce":
        from effortlens.adapters.salesforce import load_salesforce

        return load_salesforce(files, ctx=ctx, source=str(folder), now=now)
    from effortlens.adapters.hubspot import load_hubspot

    return load_hubspot(files, ctx=ctx, source=str(folder), now=now)


def _files_of(folder: Path, fmt: str) -> dict[str, tuple[Path, ...]]:
    """The files of ``folder`` recognised as exports of ``fmt`` (when detection chose another)."""
    from effortlens.adapters.reading import data_files, read_header

    out: dict[str, list[Path]] = {}
    for path in data_files(folder):
        hit = classify(read_header(path), name=path.name)
        if hit and hit[0] == fmt:
            out.setdefault(hit[1], []).append(path)
    return {k: tuple(v) for k, v in out.items()}


def detect_command_text(folder: str | Path) -> str:
    """What ``effortlens detect DIR`` prints: the format and its evidence, or what is missing.

    Examples
    --------
    >>> import tempfile
    >>> "no format recognised" in detect_command_text(tempfile.mkdtemp())
    True
    """
    detection: Detection = detect_format(folder)
    return detection.to_text()


def mapping_template_text(folder: str | Path) -> str:
    """What ``effortlens mapping-template DIR`` prints (see :func:`mapping_template`)."""
    from effortlens.adapters.template import mapping_template

    return mapping_template(folder)


def load_command_text(
    folder: str | Path,
    *,
    settings=None,
    mapping: str | Path | None = None,
    format: str | None = None,  # noqa: A002
    as_json: bool = False,
    by_file: bool = False,
    now: datetime | None = None,
) -> str:
    """What ``effortlens load DIR [--mapping M] [--format F] [--json]`` prints.

    The load report as text (notes below), or with ``as_json`` exactly the foundation's JSON
    (``report.to_dict()``: an object per table with ``read``, ``loaded``, ``quarantined`` by
    reason, ``file``, ``missing``). Raises ``DataError`` / :class:`MappingError` like
    :func:`load_any`. With ``by_file`` the counts are per export file instead (each row once in
    its file, loaded + quarantined = read, derived records apart; ``{file: {"read", "loaded",
    "quarantined", "tables", "derived", "lines"}}`` as JSON, ``lines`` being a text file's
    physical lines beside the rows read: ``{"physical", "rows", "blank", "quoted",
    "not_read"}``); a canonical folder is one file per table. Lines not all read are flagged
    ("LINES NOT READ") in the text.
    """
    data = load_any(folder, settings=settings, mapping=mapping, format=format, now=now)
    report = data.report
    if by_file and hasattr(report, "files_dict"):
        return json.dumps(report.files_dict(), indent=2) if as_json else report.files_text()
    if as_json:
        return json.dumps(data.report.to_dict(), indent=2)
    return data.report.to_text()


__all__ = [
    "MappingError",
    "detect_command_text",
    "load_any",
    "load_command_text",
    "mapping_template_text",
]
