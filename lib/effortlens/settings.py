"""Settings: one TOML file whose defaults serve the sample data.

A user's file only needs the keys that differ; it is merged over
``default_settings.toml`` (shipped with the package) and validated, and every problem is
reported with the file and the key, e.g. ``settings.toml: attribution.window_days must be a
positive number of days, got -3``.

Examples
--------
>>> from effortlens.settings import load_settings
>>> s = load_settings()
>>> s.stages[0], s.attribution_window_days
('prospect', 14)
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SETTINGS_FILE = "default_settings.toml"

#: The default of ``earliest_timestamp``: after the placeholder dates exports write for a
#: missing time (0001-01-01, 1900-01-01, 1970-01-01), before any CRM's records.
EARLIEST_TIMESTAMP = date(1990, 1, 1)

#: Canonical vocabularies (DESIGN §4). Settings may extend activity types via the map only.
ACTIVITY_TYPES: tuple[str, ...] = (
    "email",
    "call",
    "meeting",
    "demo",
    "proposal",
    "social",
    "internal",
    "admin",
    "other",
)
ACTION_TYPES: tuple[str, ...] = (
    "reply",
    "meeting_accepted",
    "meeting_held",
    "content_engaged",
    "referral",
    "proposal_requested",
    "mutual_plan",
    "verbal_commit",
)


class SettingsError(ValueError):
    """A settings file is unreadable or holds a value EffortLens cannot use."""


@dataclass(frozen=True)
class Limits:
    """What one load may cost: the ``[limits]`` section of the settings.

    A file beyond a limit is refused with a message naming the file, where it went over and
    the setting to raise, before it is read in full: a small hostile file cannot take
    gigabytes.

    Attributes
    ----------
    max_columns
        Most columns a file may have (a Salesforce object with every field has a few hundred).
    max_field_chars
        Longest value, in characters (Salesforce's long text areas hold up to 131,072).
    max_parquet_rows_per_kb
        Most rows a Parquet file, and each of its row groups, may hold per KB of its size:
        real exports take a few bytes per row at the very least, while a file of repeated
        values can expand a thousandfold when read.
    max_parquet_expansion
        Most times the values of a Parquet file may outgrow the file once read (real exports:
        3 to 10 times; a few KB of one long value repeated: millions). Files whose values
        take less than 256 MB are never refused by it.
    memory_budget_mb
        Memory one load may take, in MB: estimated from each file before it is read, and
        measured after each step; a load that would exceed it stops and says which file.
        ``0`` (the default) means half of the machine's memory (:meth:`memory_budget_bytes`).
    partition_above_rows
        ``effortlens build`` validates in chunks and enriches per partition
        (:mod:`effortlens.partitioned`) when a folder's event tables (Parquet activities and
        buyer actions) hold more rows than this; below it, in memory (about 0.4 GB per million).
    partition_rows
        Events per chunk and per partition of that build (about 0.5 GB each per million).
    build_workers
        Partitions that build works on at once, each in a process of its own (the same files
        as one at a time, sooner on several cores). ``0`` (the default) means automatic:
        two, or one on a single core or when :attr:`memory_budget_mb` cannot hold two
        partitions (:func:`effortlens.partitioned.build_workers`).

    Examples
    --------
    >>> Limits().max_columns
    2000
    """

    max_columns: int = 2_000
    max_field_chars: int = 1_000_000
    max_parquet_rows_per_kb: int = 1_000
    max_parquet_expansion: int = 1_000
    memory_budget_mb: int = 0
    partition_above_rows: int = 20_000_000
    partition_rows: int = 4_000_000
    build_workers: int = 0

    def memory_budget_bytes(self) -> int:
        """The memory budget in bytes: the setting, else half of the machine's memory.

        Examples
        --------
        >>> Limits(memory_budget_mb=512).memory_budget_bytes()
        536870912
        >>> Limits().memory_budget_bytes() >= 1 << 30
        True
        """
        if self.memory_budget_mb:
            return self.memory_budget_mb << 20
        try:
            physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not a POSIX system
            physical = 8 << 30
        return max(physical // 2, 1 << 30)


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`load_settings`, never by hand in workbooks."""

    timezone: str
    currency: str
    stages: tuple[str, ...]
    stage_map: dict[str, str]
    customer_facing: tuple[str, ...]
    internal: tuple[str, ...]
    other_is_customer_facing: bool
    activity_map: dict[str, str]
    default_duration_min: dict[str, float]
    verifiers: tuple[str, ...]
    action_weights: dict[str, float]
    attribution_window_days: int
    working_hours_per_week: float
    peer_keys: tuple[str, ...]
    min_volume: int
    currency_rates: dict[str, float]
    #: Fewest reps with volume a peer group needs before its reps are compared within it;
    #: smaller groups fall back to a broader group (the last peer key dropped).
    min_peer_reps: int = 5
    #: What one load may cost (``[limits]``); not part of :meth:`fingerprint`.
    limits: Limits = field(default_factory=Limits)
    #: Timestamps before this day (midnight UTC) are placeholders, not times: quarantined
    #: (``early_timestamp``), or read as empty where a value may be missing. Part of
    #: :meth:`fingerprint`: it decides which rows load.
    earliest_timestamp: date = EARLIEST_TIMESTAMP
    source: str = field(default="<defaults>", compare=False)

    @property
    def customer_facing_types(self) -> tuple[str, ...]:
        """Canonical activity types counted as customer-facing (``other`` if so configured)."""
        extra = ("other",) if self.other_is_customer_facing else ()
        return self.customer_facing + extra

    def fingerprint(self) -> str:
        """A stable hash of every value that can change a computed result (cache key part)."""
        payload = asdict(self)
        payload.pop("source", None)
        payload.pop("limits", None)  # they refuse inputs, they never change a result
        blob = json.dumps(payload, sort_keys=True, default=_as_json).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _as_json(value: Any) -> Any:
    """A settings value JSON cannot write: a date as ISO text, a tuple or set as a list."""
    return value.isoformat() if isinstance(value, date) else list(value)


def _default_toml() -> dict[str, Any]:
    text = resources.files("effortlens").joinpath(DEFAULT_SETTINGS_FILE).read_text("utf-8")
    return tomllib.loads(text)


def _merge(base: dict[str, Any], override: dict[str, Any], where: str, origin: str) -> dict:
    merged = dict(base)
    for key, value in override.items():
        path = f"{where}{key}"
        if key not in base:
            known = ", ".join(sorted(base)) or "(none)"
            raise SettingsError(f"{origin}: unknown setting '{path}'; known keys here: {known}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise SettingsError(f"{origin}: '{path}' must be a table ([{path}]), got {value!r}")
            # maps (activity/stage maps, weights, rates) accept new keys; sections do not
            if key in _OPEN_TABLES:
                merged[key] = {**base[key], **value}
            else:
                merged[key] = _merge(base[key], value, f"{path}.", origin)
        else:
            merged[key] = value
    return merged


_OPEN_TABLES = {"map", "default_duration_min", "weights", "currency_rates"}


def load_settings(path: str | Path | None = None) -> Settings:
    """Read settings from ``path`` merged over the defaults, and validate them.

    Parameters
    ----------
    path
        A TOML file, or ``None`` for the defaults.

    Raises
    ------
    SettingsError
        With the file, the key and what was expected.

    Examples
    --------
    >>> load_settings().peer_keys
    ('segment', 'role')
    """
    raw = _default_toml()
    origin = "<defaults>"
    if path is not None:
        p = Path(path)
        origin = str(p)
        if not p.is_file():
            raise SettingsError(f"settings file not found: {p}")
        try:
            user = tomllib.loads(p.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise SettingsError(f"{p}: not valid TOML ({err})") from err
        except OSError as err:  # the user's to fix (its rights), not a bug
            why = (err.strerror or str(err)).lower()
            raise SettingsError(f"{p}: cannot be read: {why}; check the access rights") from err
        raw = _merge(raw, user, "", origin)
    return _validate(raw, origin)


def _fail(origin: str, key: str, expected: str, got: Any) -> SettingsError:
    return SettingsError(f"{origin}: {key} must be {expected}, got {got!r}")


def _str_list(raw: Any, origin: str, key: str, *, allowed: tuple[str, ...] | None = None):
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise _fail(origin, key, "a list of non-empty strings", raw)
    if len(set(raw)) != len(raw):
        raise _fail(origin, key, "a list without repeats", raw)
    if allowed is not None:
        bad = [v for v in raw if v not in allowed]
        if bad:
            raise _fail(origin, key, f"a list drawn from {list(allowed)}", bad)
    return tuple(raw)


def _number_map(raw: Any, origin: str, key: str, *, allowed=None, positive=False):
    out: dict[str, float] = {}
    for name, value in raw.items():
        if allowed is not None and name not in allowed:
            raise _fail(origin, f"{key}.{name}", f"a key among {list(allowed)}", name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(origin, f"{key}.{name}", "a number", value)
        if value < 0 or (positive and value == 0):
            raise _fail(origin, f"{key}.{name}", "a positive number" if positive else ">= 0", value)
        out[name] = float(value)
    return out


def _validate(raw: dict[str, Any], origin: str) -> Settings:
    tz = raw["timezone"]
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as err:
        raise _fail(origin, "timezone", "an IANA time zone such as 'Europe/Paris'", tz) from err
    currency = raw["currency"]
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise _fail(origin, "currency", "a three-letter ISO code such as 'USD'", currency)

    stages = _str_list(raw["stages"]["order"], origin, "stages.order")
    if not stages:
        raise _fail(origin, "stages.order", "at least one stage", stages)
    stage_map = {}
    for name, target in raw["stages"]["map"].items():
        if target not in stages:
            raise _fail(origin, f"stages.map.{name}", f"one of stages.order {list(stages)}", target)
        stage_map[name.strip().lower()] = target

    acts = raw["activities"]
    canonical = ACTIVITY_TYPES
    customer_facing = _str_list(
        acts["customer_facing"], origin, "activities.customer_facing", allowed=canonical
    )
    internal = _str_list(acts["internal"], origin, "activities.internal", allowed=canonical)
    both = set(customer_facing) & set(internal)
    if both:
        raise _fail(origin, "activities.internal", "disjoint from customer_facing", sorted(both))
    if not isinstance(acts["other_is_customer_facing"], bool):
        raise _fail(
            origin,
            "activities.other_is_customer_facing",
            "true or false",
            acts["other_is_customer_facing"],
        )
    activity_map = {}
    for name, target in acts["map"].items():
        if target not in canonical:
            raise _fail(origin, f"activities.map.{name}", f"one of {list(canonical)}", target)
        activity_map[name.strip().lower()] = target
    durations = _number_map(
        acts["default_duration_min"], origin, "activities.default_duration_min", allowed=canonical
    )

    ba = raw["buyer_actions"]
    weights = _number_map(ba["weights"], origin, "buyer_actions.weights")
    verifiers = _str_list(
        ba["verifiers"], origin, "buyer_actions.verifiers", allowed=tuple(weights)
    )

    window = raw["attribution"]["window_days"]
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise _fail(origin, "attribution.window_days", "a positive whole number of days", window)
    hours = raw["organisation"]["working_hours_per_week"]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 168:
        raise _fail(
            origin, "organisation.working_hours_per_week", "a number of hours in (0, 168]", hours
        )
    from effortlens.schema import REPS

    peer_keys = _str_list(
        raw["peers"]["keys"],
        origin,
        "peers.keys",
        allowed=tuple(c for c in REPS.columns if c not in ("rep_id", "rep_name")),
    )
    min_volume = raw["peers"]["min_volume"]
    if isinstance(min_volume, bool) or not isinstance(min_volume, int) or min_volume < 1:
        raise _fail(origin, "peers.min_volume", "a whole number >= 1", min_volume)
    min_peer_reps = raw["peers"].get("min_peer_reps", 5)
    if isinstance(min_peer_reps, bool) or not isinstance(min_peer_reps, int) or min_peer_reps < 2:
        raise _fail(origin, "peers.min_peer_reps", "a whole number >= 2", min_peer_reps)
    rates = _number_map(raw["currency_rates"], origin, "currency_rates", positive=True)
    limits = _limits(raw.get("limits", {}), origin)
    earliest = _earliest(raw.get("earliest_timestamp", EARLIEST_TIMESTAMP), origin)

    return Settings(
        timezone=tz,
        currency=currency.upper(),
        stages=stages,
        stage_map=stage_map,
        customer_facing=customer_facing,
        internal=internal,
        other_is_customer_facing=acts["other_is_customer_facing"],
        activity_map=activity_map,
        default_duration_min=durations,
        verifiers=verifiers,
        action_weights=weights,
        attribution_window_days=window,
        working_hours_per_week=float(hours),
        peer_keys=peer_keys,
        min_volume=min_volume,
        currency_rates=rates,
        min_peer_reps=min_peer_reps,
        limits=limits,
        earliest_timestamp=earliest,
        source=origin,
    )


def _earliest(value: Any, origin: str) -> date:
    """``earliest_timestamp``: a TOML date (``1990-01-01``) or the same as text, not in the
    future (every row would be quarantined).

    Examples
    --------
    >>> _earliest("1985-06-01", "settings.toml")
    datetime.date(1985, 6, 1)
    >>> try:
    ...     _earliest("01/06/1985", "settings.toml")
    ... except SettingsError as err:
    ...     print(err)
    settings.toml: earliest_timestamp must be a date such as 1990-01-01
    (timestamps before it are quarantined), got '01/06/1985'
    """
    expected = "a date such as 1990-01-01 (timestamps before it are quarantined)"
    day = value
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            day = None
    # a TOML date-time is a datetime, itself a date: refused, the day alone is meant
    if not isinstance(day, date) or type(day) is not date:
        raise _fail(origin, "earliest_timestamp", expected, value)
    if day > date.today():
        raise _fail(origin, "earliest_timestamp", "a date not in the future", value)
    return day


def _limits(raw: dict[str, Any], origin: str) -> Limits:
    """The ``[limits]`` section as :class:`Limits`: each a whole number >= its floor."""
    floors = {
        "max_columns": 1,
        "max_field_chars": 1,
        "max_parquet_rows_per_kb": 1,
        "max_parquet_expansion": 1,
        "memory_budget_mb": 64,
        "partition_above_rows": 0,
        "partition_rows": 1_000,
        "build_workers": 0,
    }
    values = {}
    for key, floor in floors.items():
        value = raw.get(key, getattr(Limits, key))
        automatic = key == "memory_budget_mb" and value == 0
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (value < floor and not automatic)
        ):
            expected = f"a whole number >= {floor:,}" + (
                " (or 0)" if key == "memory_budget_mb" else ""
            )
            raise _fail(origin, f"limits.{key}", expected, value)
        values[key] = value
    return Limits(**values)


def folder_settings_file(
    folder: str | Path, settings_path: str | Path | None = None
) -> Path | None:
    """The settings file for a data folder: the one given, else the folder's ``settings.toml``.

    ``None`` means the defaults. The command line and the apps both ask this, so a folder
    loads with the same settings everywhere.

    Examples
    --------
    >>> folder_settings_file("exports/acme", "my_settings.toml")
    PosixPath('my_settings.toml')
    >>> folder_settings_file("no/such/folder") is None
    True
    """
    if settings_path:
        return Path(settings_path).expanduser()
    own = Path(folder).expanduser() / "settings.toml"
    try:
        return own if own.is_file() else None
    except OSError:  # an unreadable folder: the load itself says so
        return None


def settings_for_folder(folder: str | Path, settings_path: str | Path | None = None) -> Settings:
    """The settings a data folder loads with: :func:`folder_settings_file`, validated.

    Parameters
    ----------
    folder
        The data folder.
    settings_path
        A settings TOML given by the user; default the folder's ``settings.toml``, else the
        defaults.

    Raises
    ------
    SettingsError
        With the file, the key and what was expected.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "settings.toml").write_text('timezone = "Europe/Paris"')
    >>> settings_for_folder(folder).timezone
    'Europe/Paris'
    """
    return load_settings(folder_settings_file(folder, settings_path))
