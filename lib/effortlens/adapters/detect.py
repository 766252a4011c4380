"""Which kind of data a folder holds, told from file names and header lines.

Formats, in the order they are tried:

``mapping``
    the folder holds a mapping file (``mapping.toml``, ``effortlens-mapping.toml`` or
    ``*.mapping.toml``) with a table section: the user has said how to read it (a mapping of
    value maps only, for a CRM's exports, does not decide the format; it is applied to it);
``canonical``
    files named after EffortLens's tables (``reps.csv`` plus ``activities.csv`` or
    ``opportunities.csv``, or Parquet);
``salesforce``
    Data Loader / Data Export files with API field names as headers (``Opportunity``,
    ``Task``, ``Event``, ``User``, ``EmailMessage``, ``OpportunityHistory``…), recognised by
    their headers whatever the file is called;
``hubspot``
    HubSpot exports with property labels or internal names (deals, emails, calls, meetings,
    owners, contacts).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "deals.csv").write_text("Record ID,Deal Name,Deal Stage,Create Date\\n")
>>> detect_format(folder).format
'hubspot'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from effortlens.adapters.reading import cannot_read, data_files, find_column, read_header
from effortlens.schema import EFFORT_OR_PIPELINE, TABLES, why_ignored

FORMATS: tuple[str, ...] = ("canonical", "salesforce", "hubspot", "mapping")
MAPPING_NAMES: tuple[str, ...] = ("mapping.toml", "effortlens-mapping.toml")

#: (format, kind, header groups): a file is of this kind when each group has a header present.
#: More specific kinds come first.
SIGNATURES: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("salesforce", "User", (("Id",), ("Username",), ("IsActive",))),
    ("salesforce", "UserRole", (("Id",), ("Name",), ("ParentRoleId",))),
    ("salesforce", "OpportunityFieldHistory", (("OpportunityId",), ("Field",), ("NewValue",))),
    ("salesforce", "OpportunityHistory", (("OpportunityId",), ("StageName",), ("CreatedDate",))),
    ("salesforce", "Opportunity", (("Id",), ("StageName",), ("OwnerId",), ("CloseDate",))),
    ("salesforce", "CurrencyType", (("IsoCode",), ("ConversionRate",), ("IsCorporate",))),
    (
        "salesforce",
        "DatedConversionRate",
        (("IsoCode",), ("ConversionRate",), ("StartDate",), ("NextStartDate",)),
    ),
    (
        "salesforce",
        "Task",
        (
            ("Id",),
            ("WhoId", "WhatId"),
            ("OwnerId",),
            ("Subject", "TaskSubtype"),
            ("Status", "TaskSubtype", "IsClosed", "CallType"),
            ("ActivityDate", "CompletedDateTime", "CreatedDate"),
        ),
    ),
    (
        "salesforce",
        "Event",
        (
            ("Id",),
            ("WhoId", "WhatId"),
            ("OwnerId",),
            ("Subject", "EventSubtype"),
            ("StartDateTime", "ActivityDateTime", "DurationInMinutes"),
        ),
    ),
    ("salesforce", "EmailMessage", (("Id",), ("Incoming",), ("FromAddress",))),
    ("salesforce", "Contact", (("Id",), ("AccountId",), ("Email",), ("LastName",))),
    (
        "hubspot",
        "deals",
        (("dealstage", "Deal Stage"), ("hs_object_id", "Record ID", "Deal ID", "dealId")),
    ),
    (
        "hubspot",
        "meetings",
        (
            (
                "hs_meeting_outcome",
                "Meeting outcome",
                "hs_meeting_start_time",
                "Meeting start time",
                "hs_meeting_title",
                "Meeting name",
            ),
        ),
    ),
    (
        "hubspot",
        "calls",
        (
            (
                "hs_call_duration",
                "Call duration",
                "hs_call_direction",
                "Call direction",
                "hs_call_status",
                "Call status",
                "hs_call_title",
                "Call Title",
            ),
        ),
    ),
    (
        "hubspot",
        "emails",
        (
            (
                "hs_email_direction",
                "Email direction",
                "hs_email_subject",
                "Email subject",
                "hs_email_status",
                "Email send status",
            ),
        ),
    ),
    (
        "hubspot",
        "owners",
        (
            ("Owner ID", "ownerId", "hubspot_owner_id", "User ID", "id"),
            ("Email", "email"),
            ("First Name", "firstName", "firstname"),
        ),
    ),
    (
        "hubspot",
        "contacts",
        (
            ("Record ID", "hs_object_id", "Contact ID", "vid"),
            ("Email", "email"),
            (
                "Associated Company ID",
                "Associated Company IDs",
                "Associated Company IDs (Primary)",
                "associatedcompanyid",
                "Company ID",
            ),
        ),
    ),
)

#: Headers that a kind's own export never has: a file with one of them is another object
#: (``ContactRequest`` has WhoId/WhatId/OwnerId/Status like a Task; the recurrence exceptions
#: of events have StartDateTime like an Event).
FOREIGN: dict[str, tuple[str, ...]] = {
    "Task": (
        "PreferredChannel",
        "PreferredPhone",
        "RequestReason",
        "RequestDescription",
        "StartDateTime",
        "EndDateTime",
        "DurationInMinutes",
        "IsAllDayEvent",
        "SeriesActivityId",
        "ExceptionDate",
    ),
    "Event": (
        "SeriesActivityId",
        "ExceptionDate",
        "OriginalStartDateTime",
        "OriginalActivityDate",
        "IsCancelled",
        "PreferredChannel",
        "RequestReason",
        "TaskSubtype",
        "CallType",
        "CompletedDateTime",
    ),
}
#: Salesforce objects EffortLens reads; a file named after another object is that object
#: (Data Export names each file after its object), never one of these.
SALESFORCE_OBJECTS: tuple[str, ...] = (
    "Account",
    "ActivityHistory",
    "ActivityRecurrence2",
    "ActivityRecurrence2Exception",
    "Case",
    "CaseHistory",
    "Campaign",
    "CampaignMember",
    "ContactRequest",
    "ContentDocument",
    "EventRelation",
    "EventWhoRelation",
    "Lead",
    "LeadHistory",
    "OpenActivity",
    "OpportunityContactRole",
    "OpportunityLineItem",
    "RecurrenceException",
    "TaskRelation",
    "TaskWhoRelation",
)

#: What each kind of export file becomes, for ``effortlens detect``.
BECOMES: dict[str, str] = {
    "User": "reps",
    "UserRole": "reps' teams",
    "OpportunityFieldHistory": "stage history",
    "OpportunityHistory": "stage history",
    "Opportunity": "deals",
    "CurrencyType": "conversion rates for deal amounts",
    "DatedConversionRate": "dated conversion rates for deal amounts",
    "Task": "activities (inbound calls: buyer actions)",
    "Event": "activities (meetings)",
    "EmailMessage": "buyer actions (incoming) and activities (outgoing)",
    "Contact": "accounts of contacts",
    "deals": "deals and stage history",
    "meetings": "activities and buyer actions",
    "calls": "activities and buyer actions",
    "emails": "activities and buyer actions",
    "owners": "reps",
    "contacts": "companies of contacts",
}

#: Kinds that make a folder a source of that format (the others only help).
_CORE = {
    "salesforce": ("Opportunity", "Task", "Event", "EmailMessage"),
    "hubspot": ("deals", "emails", "calls", "meetings"),
}
_HELPFUL = {
    "salesforce": {
        "User": "no User export: reps are named by their Salesforce ids",
        "Opportunity": "no Opportunity export: no deals, so no buyer-journey views",
        "OpportunityHistory": "no OpportunityHistory or OpportunityFieldHistory export: stage "
        "entries are derived from each deal's current stage",
    },
    "hubspot": {
        "owners": "no owners export: reps are named as the deal/activity owner columns name them",
        "deals": "no deals export: no deals, so no buyer-journey views",
    },
}
_NEEDS = {
    "canonical": "canonical: files named after the tables, reps.csv plus activities.csv or "
    "opportunities.csv (or .parquet)",
    "salesforce": "Salesforce: Data Loader / Data Export files with API names as headers: "
    "Opportunity (Id, StageName, OwnerId, CloseDate…) or Task / Event (Id, WhoId, WhatId, "
    "OwnerId…), best with User (Id, Username, IsActive…) and OpportunityHistory",
    "hubspot": "HubSpot: a deals export (Record ID, Deal Stage / hs_object_id, dealstage…) or "
    "emails, calls or meetings exports, best with an owners export",
    "mapping": "anything else: a mapping file; write one with "
    "`effortlens mapping-template DIR > DIR/mapping.toml` and fill it in",
}


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_format` found.

    Attributes
    ----------
    format
        ``"canonical"``, ``"salesforce"``, ``"hubspot"``, ``"mapping"``, or ``None``.
    folder
        The folder looked at.
    evidence
        One line per file that was recognised, with the headers that matched.
    missing
        What the folder lacks: for no format, what each format would need; for a recognised
        one, the optional exports whose absence limits what can be shown.
    files
        Kind (``"Opportunity"``, ``"deals"``, ``"reps"``, ``"mapping"``…) to the files of it.
    ignored
        Files that are not read, each with why (``"ContactRequest.csv (a Salesforce
        ContactRequest export: not read)"``).
    incomplete
        Files named after an export EffortLens reads (``Task.csv``) whose header lacks a
        column that export always has: each a sentence naming the file, the missing column
        and the columns found. Loading such a folder stops with these sentences.
    unreadable
        Files whose header could not be read (their access rights, a damaged Parquet file),
        each as a sentence naming the file; loading an export folder stops with them, since
        their rows would be lost.
    """

    format: str | None
    folder: Path
    evidence: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    incomplete: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()

    def to_text(self) -> str:
        """What ``effortlens detect DIR`` prints."""
        if self.format is None:
            lines = [f"{self.folder}: no format recognised. EffortLens reads:"]
            lines += [f"  - {m}" for m in self.missing]
            if self.ignored:
                lines.append("files found:")
                lines += [f"  - {i}" for i in self.ignored]
            if self.incomplete:
                lines.append("cannot be read (export these columns too):")
                lines += [f"  - {i}" for i in self.incomplete]
            return "\n".join(lines)
        lines = [f"{self.folder}: {self.format}"]
        lines += [f"  {e}" for e in self.evidence]
        if self.missing:
            lines.append("limits:")
            lines += [f"  - {m}" for m in self.missing]
        if self.ignored:
            lines.append("not used:")
            lines += [f"  - {i}" for i in self.ignored]
        if self.incomplete:
            lines.append("cannot be read (export these columns too):")
            lines += [f"  - {i}" for i in self.incomplete]
        return "\n".join(lines)


def classify(headers: list[str], *, name: str | None = None) -> tuple[str, str, list[str]] | None:
    """(format, kind, matched headers) of an export file from its header line, or ``None``.

    A file is of a kind when each of the kind's header groups has a header present and none
    of the kind's :data:`FOREIGN` headers is; a file named after another Salesforce object
    (``ContactRequest.csv``) is not taken for one EffortLens reads.

    Examples
    --------
    >>> classify(["Id", "OpportunityId", "StageName", "CreatedDate", "Amount"])[:2]
    ('salesforce', 'OpportunityHistory')
    >>> classify(["Id", "WhoId", "WhatId", "OwnerId", "Status", "PreferredChannel"]) is None
    True
    """
    if name is not None and other_object(name):
        return None
    for fmt, kind, groups in SIGNATURES:
        matched = [find_column(headers, *group) for group in groups]
        if all(matched) and not find_column(headers, *FOREIGN.get(kind, ())):
            return fmt, kind, [m for m in matched if m]
    return None


def near_miss(headers: list[str], name: str) -> str | None:
    """For a file named after an export EffortLens reads (``Task.csv``, ``Opportunity.csv``…)
    whose header does not match it: which columns it lacks, and the columns found.

    Examples
    --------
    >>> print(near_miss(["Id", "Subject", "ActivityDate", "Status"], "Task.csv")[:64])
    Task.csv is named like a Salesforce Task export but has no WhoId
    """
    stem = Path(name).stem.strip().lower()
    for fmt, kind, groups in SIGNATURES:
        if fmt != "salesforce" or kind.lower() != stem:
            continue
        lacking = [" or ".join(g) for g in groups if not find_column(headers, *g)]
        foreign = [h for h in FOREIGN.get(kind, ()) if find_column(headers, h)]
        if not lacking and not foreign:
            return None
        problem = (
            "has no " + ", no ".join(lacking)
            if lacking
            else "has columns such a file never has (" + ", ".join(foreign) + ")"
        )
        return (
            f"{name} is named like a Salesforce {kind} export but {problem}. Columns found: "
            + ", ".join(headers)
        )
    return None


def other_object(name: str) -> str | None:
    """The Salesforce object a file is named after, when it is one EffortLens does not read.

    Examples
    --------
    >>> other_object("ActivityRecurrence2Exception.csv"), other_object("Task.csv")
    ('ActivityRecurrence2Exception', None)
    """
    stem = Path(name).stem.strip().lower()
    for obj in SALESFORCE_OBJECTS:
        if stem == obj.lower():
            return obj
    return None


def mapping_file(folder: Path) -> Path | None:
    """The mapping file kept in ``folder``, if any."""
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        if path.is_file() and (name in MAPPING_NAMES or name.endswith(".mapping.toml")):
            return path
    return None


def _names_tables(path: Path) -> bool:
    """Whether a mapping file says how to read files (a table section), not only value maps."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return True  # let loading report what is wrong with it
    return any(key in TABLES for key in data)


def detect_format(folder: str | Path) -> Detection:
    """Say which format a folder's files are in, from their names and header lines.

    Parameters
    ----------
    folder
        The folder of export files.

    Returns
    -------
    Detection
        ``format`` is ``None`` when nothing was recognised; ``missing`` then lists what each
        format would need.

    Raises
    ------
    effortlens.loading.DataError
        When ``folder`` is not a folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.csv").write_text("a,b\\n1,2\\n")
    >>> detect_format(folder).format is None
    True
    """
    from effortlens.loading import DataError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = data_files(folder)

    mapping = mapping_file(folder)
    if mapping is not None and _names_tables(mapping):
        return Detection(
            "mapping",
            folder,
            (f"{mapping.name}: a mapping file",),
            files={"mapping": (mapping,)},
            ignored=(),
        )

    tables = {}
    for path in files:
        stem = path.stem.strip().lower()
        if stem in TABLES:
            tables.setdefault(stem, []).append(path)
    if "reps" in tables and set(tables) & set(EFFORT_OR_PIPELINE):
        evidence = tuple(f"{p.name}: the {t} table" for t, ps in tables.items() for p in ps)
        used = {p for ps in tables.values() for p in ps}
        return Detection(
            "canonical",
            folder,
            evidence,
            files={t: tuple(ps) for t, ps in tables.items()},
            ignored=tuple(why_ignored(p.name) for p in files if p not in used),
        )

    found: dict[str, dict[str, list[Path]]] = {"salesforce": {}, "hubspot": {}}
    evidence: dict[str, list[str]] = {"salesforce": [], "hubspot": []}
    unknown: list[str] = []
    incomplete: list[str] = []
    unreadable: list[str] = []
    for path in files:
        try:
            headers = read_header(path)
        except (OSError, UnicodeDecodeError) as err:
            unknown.append(f"{path.name} (cannot be read: {err})")
            unreadable.append(cannot_read(path, err))
            continue
        hit = classify(headers, name=path.name)
        if hit is None:
            miss = near_miss(headers, path.name)
            if miss:
                incomplete.append(miss)
                continue
            obj = other_object(path.name)
            unknown.append(
                f"{path.name} (a Salesforce {obj} export: not read)"
                if obj
                else f"{path.name} (its header matches no export EffortLens reads)"
            )
            continue
        fmt, kind, matched = hit
        found[fmt].setdefault(kind, []).append(path)
        label = "Salesforce" if fmt == "salesforce" else "HubSpot"
        becomes = BECOMES.get(kind, "")
        evidence[fmt].append(
            f"{path.name}: {label} {kind} ({', '.join(matched)})"
            + (f" -> {becomes}" if becomes else "")
        )

    scores = {fmt: sum(len(found[fmt].get(k, [])) for k in _CORE[fmt]) for fmt in found}
    best = max(scores, key=lambda f: scores[f])
    if scores[best] == 0:
        return Detection(
            None,
            folder,
            missing=tuple(_NEEDS.values()),
            ignored=tuple(unknown),
            incomplete=tuple(incomplete),
            unreadable=tuple(unreadable),
        )
    kinds = found[best]
    missing = []
    for kind, why in _HELPFUL[best].items():
        present = kind in kinds or (
            kind == "OpportunityHistory" and "OpportunityFieldHistory" in kinds
        )
        if not present:
            missing.append(why)
    other = [e for f, lines in evidence.items() if f != best for e in lines]
    return Detection(
        best,
        folder,
        tuple(evidence[best]),
        tuple(missing),
        files={k: tuple(v) for k, v in kinds.items()},
        ignored=tuple(unknown)
        + tuple(
            f"{line.split(':')[0]} (a {'HubSpot' if best == 'salesforce' else 'Salesforce'} "
            f"export in a {best} folder)"
            for line in other
        ),
        incomplete=tuple(incomplete),
        unreadable=tuple(unreadable),
    )
