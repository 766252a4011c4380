"""Salesforce exports (Data Loader or the weekly Data Export: API field names as headers).

What each object becomes:

``User`` -> reps
    ``Id``, ``Name`` (else first + last name), team = the ``UserRole`` name (``UserRole.csv``
    or a ``UserRole.Name`` column; else ``Department``), role = ``Title``, segment =
    ``Segment__c`` else ``Division``, region = ``Region__c`` else ``Country``, manager =
    ``ManagerId``, hire date = ``Hire_Date__c``/``HireDate__c``/``Start_Date__c`` when there.
    Only users who own a task, event, deal or sent email, and their managers, are reps; the
    others (admins, integration users) are counted in a note. Inactive users stay reps: they
    left, and their exit date is ``Exit_Date__c``/``Termination_Date__c`` when there, else the
    date of ``LastModifiedDate`` (deactivating a user is normally its last edit; a note says
    so); the exit reason is ``Exit_Reason__c`` when there. ``TimeZoneSidKey`` is the rep's
    ``timezone`` (local day, week and hour of their activities).
``Task`` -> activities (and buyer actions)
    time = ``CompletedDateTime``, else ``CreatedDate``, else ``ActivityDate``; type by the
    chain of :mod:`effortlens.adapters.task_types` (value map, ``TaskSubtype``, ``Type``,
    ``EmailMessageId``, call fields, ``Subject`` prefix, settings default; counted per step in
    a note); duration = ``CallDurationInSeconds`` / 60. Inbound calls (``CallType`` =
    Inbound) are the buyer calling: buyer actions of type ``reply``. Set aside: deleted
    tasks, tasks not done (``IsClosed`` false).
``Event`` -> activities
    time = ``StartDateTime`` else ``ActivityDateTime`` else ``ActivityDate``; type = ``Type``,
    blank meaning ``meeting``; duration = ``DurationInMinutes``. Set aside: deleted events and
    the invitees' copies of group events (``IsChild`` true).
``EmailMessage`` -> buyer actions (incoming) and activities (outgoing)
    Incoming emails are buyer ``reply`` actions, except automatic replies, out-of-office
    messages and bounces (``not_buyer_action``). Outgoing emails are ``email`` activities of
    their sender (``CreatedById``), except drafts and emails already logged as a Task
    (``ActivityId``, or the Task's ``EmailMessageId``), which count once, as the Task, when
    that Task is loaded; when validation quarantines the Task, the email counts instead.
``Opportunity`` -> opportunities
    outcome: open while ``IsClosed`` is false; won when ``IsWon``; else lost, or no_decision
    when ``StageName`` or any loss-reason field (recognised by name, or named in the
    mapping's ``[source] loss_reason``) says so: a label the mapping's ``[values.outcome]``
    maps to no_decision, or one holding the words (``"No Decision / Non-Responsive"``).
    ``CloseDate`` is kept for closed deals only (on open deals it is an expected date).
    ``Amount`` in ``CurrencyIsoCode``, converted into the settings' currency with
    ``CurrencyType`` / ``DatedConversionRate`` when exported (see
    :mod:`effortlens.adapters.currency`). A deal without ``CreatedDate`` is kept (unknown
    age); ``LastStageChangeDate`` dates its current stage.
``OpportunityHistory`` / ``OpportunityFieldHistory`` -> stage history
    History rows whose stage differs from the deal's previous row are stage entries (rows that
    only change amount or dates are not; entering Closed Won/Lost is the outcome, not a
    stage). Field history (``Field`` = StageName) gives ``NewValue`` at ``CreatedDate``, and
    the first change's ``OldValue`` at the deal's ``CreatedDate``. Deals with no history get
    entries derived from their current stage (see
    :func:`effortlens.adapters.derivation.derived_stage_entries`).

Every id is turned into its 18-character form (case restored from the checksum), so files
mixing 15- and 18-character ids, or ids whose case a spreadsheet changed, join; the empty
lookup ``000000000000000AAA`` (or ``000000000000000``) is null in every column. A missing
optional column is not used; a missing essential one (:data:`ESSENTIAL`) stops the load with
one message naming the file, the column and the columns found. Account of an
activity: ``AccountId``, else ``WhatId`` when it is an account, else the deal's account, else
the contact's (from ``Contact.csv``); activities with a contact but no account are kept.

Modules, in the order a load meets them: :mod:`~effortlens.adapters.salesforce_objects`
(API field names, ids, essential columns, links between objects),
:mod:`~effortlens.adapters.salesforce_activities` (``Task``, ``Event``, ``EmailMessage``),
:mod:`~effortlens.adapters.salesforce_deals` (``Opportunity`` and its stage history),
:mod:`~effortlens.adapters.salesforce_users` (``User``, ``UserRole``); this one puts them
together (:func:`load_salesforce`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from effortlens.adapters.currency import rate_tables
from effortlens.adapters.derivation import reps_from_owners
from effortlens.adapters.pieces import Piece, assemble
from effortlens.adapters.reading import Context, across, file_list, read_sheet
from effortlens.adapters.salesforce_activities import read_emails, read_events, read_tasks
from effortlens.adapters.salesforce_deals import (
    DEFAULT_STAGES,
    read_opportunities,
    read_stage_history,
)
from effortlens.adapters.salesforce_objects import (
    API_FIELDS,
    ESSENTIAL,
    ID_COLUMNS,
    Links,
    check_essential,
    frames,
    normalised,
)
from effortlens.adapters.salesforce_users import read_users
from effortlens.loading import LoadedData
from effortlens.loading.guard import guarded

__all__ = [
    "API_FIELDS",
    "DEFAULT_STAGES",
    "ESSENTIAL",
    "ID_COLUMNS",
    "check_essential",
    "load_salesforce",
]


def load_salesforce(
    files: dict[str, tuple[Path, ...]],
    *,
    ctx: Context,
    source: str = "",
    now: datetime | None = None,
) -> LoadedData:
    """Load Salesforce export files (by object) into validated canonical tables.

    Parameters
    ----------
    files
        Object name (``"Opportunity"``, ``"Task"``…, as :func:`detect_format` returns them)
        to its export files.
    ctx
        Settings, source time zone and value maps (see :class:`Context`).
    source
        Where the files came from, for the report.
    now
        Load time (future timestamps are quarantined).

    Returns
    -------
    effortlens.loading.LoadedData

    Examples
    --------
    >>> from effortlens.adapters import detect_format, load_any
    >>> from effortlens.settings import load_settings
    >>> # load_any("exports/", settings=load_settings())  # detects Salesforce and calls this
    """
    sheets = {kind: [normalised(read_sheet(p)) for p in paths] for kind, paths in files.items()}

    def named(*kinds: str) -> list[str]:
        return [s.name for k in (kinds or sheets) for s in sheets.get(k, [])]

    # a bug in a step across files names the step and the files it read, not the folder
    with across("checking the columns they must have", named()):
        check_essential(sheets)
    linked = named("Opportunity", "Contact", "User")
    acts = file_list(named("Task", "Event", "EmailMessage")) or "the activities"
    with across(f"linking {acts} to {file_list(linked)}", linked):
        links = Links(sheets)
    pieces: list[Piece] = []

    kept_tasks: dict[str, str | None] = {}
    # a bug reading one file is reported naming that file (guarded), not the folder
    for sheet in sheets.get("Task", []):
        with guarded(sheet.name):
            task_pieces, kept = read_tasks(sheet, ctx, links)
        pieces += task_pieces
        kept_tasks |= kept
    for sheet in sheets.get("Event", []):
        with guarded(sheet.name):
            pieces += read_events(sheet, ctx, links)
    email_sheets = sheets.get("EmailMessage", [])

    def emails(kept: dict[str, str | None]) -> list[Piece]:
        out = []
        for sheet in email_sheets:
            step = f"matching {sheet.name} to the tasks of {file_list(named('Task'))}"
            with across(step, [sheet.name, *named("Task")]):
                out += read_emails(sheet, ctx, links, kept)
        return out

    email_pieces = emails(kept_tasks)
    currency = named("CurrencyType", "DatedConversionRate")
    with across("reading their currency rates", currency):
        rates = rate_tables(
            frames(sheets.get("CurrencyType", [])), frames(sheets.get("DatedConversionRate", []))
        )
    opportunity_pieces = []
    for sheet in sheets.get("Opportunity", []):
        with guarded(sheet.name):
            opportunity_pieces.append(read_opportunities(sheet, ctx, rates))
    pieces += [piece for piece, _, _ in opportunity_pieces]
    history = named("OpportunityHistory", "OpportunityFieldHistory", "Opportunity")
    with across("reading their stage history (derived where it is missing)", history):
        pieces += read_stage_history(sheets, ctx, opportunity_pieces)

    owners = [p.file for p in pieces + email_pieces if not p.file.startswith("(")]
    if sheets.get("User"):
        users = named("User", "UserRole")
        step = f"matching the users of {file_list(users)} to the owners in {file_list(owners)}"
        with across(step, [*users, *owners]):
            pieces += read_users(sheets, ctx, pieces + email_pieces)
    else:
        with across("deriving reps from the owners they name", owners):
            pieces = reps_from_owners(pieces + email_pieces, ctx)
        email_pieces = []
        ctx.note("no User export: reps are the owner ids of tasks, events and deals, unnamed")
    data = _assemble(pieces + email_pieces, ctx, source=source, now=now)
    # dedupe never drops both copies: an email set aside as its Task is kept when that Task
    # was itself quarantined by validation (a bad time, an unknown owner…)
    loaded = set(data.tables["activities"]["activity_id"].to_list())
    lost = {t for t in kept_tasks if t not in loaded}
    if lost and email_pieces:
        still = {t: e for t, e in kept_tasks.items() if t in loaded}
        email_pieces = emails(still)
        data = _assemble(pieces + email_pieces, ctx, source=source, now=now)
    return data


def _assemble(pieces: list[Piece], ctx: Context, *, source: str, now: datetime | None):
    """:func:`assemble`, a bug in it naming the files whose rows it was validating."""
    files = [p.file for p in pieces if not p.file.startswith("(")]
    with across("validating the tables they make", files):
        return assemble(pieces, ctx, source=source, now=now)
