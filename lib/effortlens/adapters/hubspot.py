"""HubSpot exports, with property labels (the UI's default) or internal names.

What each export becomes:

owners -> reps
    ``Owner ID``/``id``, first + last name, ``Team``/``teams``/``Primary team``. Archived
    (deactivated) owners stay reps who left, exit date from ``updatedAt``/``Last updated``
    (noted as an approximation). Deals and activities name their owner by id (internal names)
    or by name (labels); both are matched to the owner, as are e-mail addresses. Without an
    owners export, the reps are the owners named in the other files.
deals -> opportunities and stage history
    ``Record ID``/``hs_object_id``, ``Deal owner``/``hubspot_owner_id``, ``Create Date``,
    ``Close Date`` (kept for closed deals only), ``Amount`` in ``Currency``
    (``deal_currency_code``), company from ``Associated Company IDs``/``associatedcompanyid``.
    Outcome: ``Is Closed Won``/``Is Deal Closed?`` (``hs_is_closed_won``/``hs_is_closed``)
    when exported, else the stage (closedwon, closedlost); a closed-lost deal whose
    ``Closed Lost Reason`` is an outcome label for no decision is ``no_decision``. Stage
    history: one entry per filled ``Date entered "<stage> (<pipeline>)"`` column
    (``hs_v2_date_entered_<stage id>``, ``hs_date_entered_<stage id>``); entering closed won/lost
    is the outcome, not a stage. Without those columns, entries are derived from each deal's
    current stage (see :func:`effortlens.adapters.derivation.derived_stage_entries`). Custom
    pipelines' stage ids or names go in the mapping's ``[values.stage]``.
emails -> activities and buyer actions
    ``Email direction`` EMAIL = the rep's email (an activity); INCOMING_EMAIL and
    FORWARDED_EMAIL (a buyer's email the rep forwarded into HubSpot) = a buyer ``reply``,
    except automatic replies and out-of-office messages (``not_buyer_action``). Outgoing
    emails whose send status is failed, scheduled or a draft are ``not_completed``.
calls -> activities and buyer actions
    Outbound calls are ``call`` activities (duration: ``h:mm:ss`` or milliseconds); inbound
    calls are the buyer calling: a buyer ``reply``. Cancelled, queued or failed calls are
    ``not_completed``.
meetings -> activities and buyer actions
    Every meeting is an activity (type from ``Activity type``/``hs_activity_type``, else
    meeting; duration from start and end) except cancelled or rescheduled ones; a meeting
    whose outcome is COMPLETED is also a buyer ``meeting_held`` action (a verifier).
contacts (optional) -> the account of an activity whose only association is a contact.

An activity's account: its associated company, else its contact's company, else its deal's.
Several associated ids in one cell (``"5001;5002"``) use the first, noted.

Modules: :mod:`~effortlens.adapters.hubspot_objects` (header names, ids, links between
exports), :mod:`~effortlens.adapters.hubspot_activities` (emails, calls, meetings),
:mod:`~effortlens.adapters.hubspot_deals` (deals and their stage history),
:mod:`~effortlens.adapters.hubspot_owners` (owners); this one puts them together
(:func:`load_hubspot`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from effortlens.adapters.derivation import reps_from_owners, resolve_owner_names
from effortlens.adapters.hubspot_activities import read_calls, read_emails, read_meetings
from effortlens.adapters.hubspot_deals import DEFAULT_STAGES, read_deals, stage_name
from effortlens.adapters.hubspot_objects import (
    COMPANIES,
    CONTACTS,
    DEALS,
    ID,
    OWNER,
    TIMESTAMP,
    Links,
)
from effortlens.adapters.hubspot_owners import read_owners
from effortlens.adapters.pieces import Piece, assemble
from effortlens.adapters.reading import Context, across, file_list, read_sheet
from effortlens.loading import LoadedData
from effortlens.loading.guard import guarded

__all__ = [
    "COMPANIES",
    "CONTACTS",
    "DEALS",
    "DEFAULT_STAGES",
    "ID",
    "OWNER",
    "TIMESTAMP",
    "load_hubspot",
    "stage_name",
]


def load_hubspot(
    files: dict[str, tuple[Path, ...]],
    *,
    ctx: Context,
    source: str = "",
    now: datetime | None = None,
) -> LoadedData:
    """Load HubSpot export files (by kind) into validated canonical tables.

    Parameters
    ----------
    files
        Kind (``"deals"``, ``"emails"``, ``"calls"``, ``"meetings"``, ``"owners"``,
        ``"contacts"``, as :func:`detect_format` returns them) to its export files.
    ctx
        Settings, source time zone (HubSpot's UI exports write the portal's zone) and value
        maps.
    source
        Where the files came from, for the report.
    now
        Load time.

    Examples
    --------
    >>> # load_any("hubspot_exports/", settings=load_settings())  # detects and calls this
    """
    sheets = {kind: [read_sheet(p) for p in paths] for kind, paths in files.items()}
    acts = [s.name for kind in ("emails", "calls", "meetings") for s in sheets.get(kind, [])]
    linked = [s.name for kind in ("contacts", "deals") for s in sheets.get(kind, [])]
    # a bug in a step across files names the step and the files it read, not the folder
    to = file_list(linked) or "the contacts and deals"
    step = f"linking {file_list(acts) or 'the activities'} to {to}"
    with across(step, linked):
        links = Links(sheets, ctx)
    pieces: list[Piece] = []
    # a bug reading one file is reported naming that file (guarded), not the folder
    for sheet in sheets.get("emails", []):
        with guarded(sheet.name):
            pieces += read_emails(sheet, ctx, links)
    for sheet in sheets.get("calls", []):
        with guarded(sheet.name):
            pieces += read_calls(sheet, ctx, links)
    for sheet in sheets.get("meetings", []):
        with guarded(sheet.name):
            pieces += read_meetings(sheet, ctx, links)
    for sheet in sheets.get("deals", []):
        with guarded(sheet.name):
            pieces += read_deals(sheet, ctx)
    named = [p.file for p in pieces if not p.file.startswith("(")]
    if sheets.get("owners"):
        with guarded(" + ".join(sheet.name for sheet in sheets["owners"])):
            reps, aliases = read_owners(sheets["owners"], ctx)
        owners = [s.name for s in sheets["owners"]]
        step = f"matching the owners of {file_list(owners)} to those named in {file_list(named)}"
        with across(step, [*owners, *named]):
            pieces = reps + resolve_owner_names(pieces, reps, ctx, aliases=aliases)
    else:
        with across("deriving reps from the owners they name", named):
            pieces = reps_from_owners(pieces, ctx)
        ctx.note("no owners export: reps are the owners named in the other files (no teams)")
    files = [p.file for p in pieces if not p.file.startswith("(")]
    with across("validating the tables they make", files):
        return assemble(pieces, ctx, source=source, now=now)
