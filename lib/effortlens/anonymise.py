"""Stable pseudonyms for people and buyers, applied before anything reaches a view.

Pseudonyms are numbered in the order of a salted hash of the ids ("Rep 07", "Manager 2",
"Account 0113"), so they are short, never collide, stay the same on every page built from the
same data, and do not reveal the real order of ids or names.

Examples
--------
>>> import polars as pl
>>> reps = pl.DataFrame(
...     {"rep_id": ["r1", "r2"], "rep_name": ["Ada", "Bo"], "manager_id": ["m", "m"]}
... )
>>> p = build_pseudonyms(reps=reps, salt="s")
>>> out = anonymise_frame(reps, p)
>>> sorted(out["rep_name"].to_list()) == sorted(out["rep_id"].to_list()) == ["Rep 1", "Rep 2"]
True
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

#: Column in a view -> the kind of id it holds. ``rep_name`` is replaced by its rep's pseudonym.
_KIND_OF_COLUMN = {
    "rep_id": "rep",
    "rep_name": "rep",
    "manager_id": "manager",
    "manager": "manager",
    "account_id": "account",
    "contact_id": "contact",
}
_PREFIX = {"rep": "Rep", "manager": "Manager", "account": "Account", "contact": "Contact"}


@dataclass(frozen=True)
class Pseudonyms:
    """Id -> pseudonym tables per kind (``rep``, ``manager``, ``account``, ``contact``)."""

    maps: dict[str, pl.DataFrame]
    rep_names: pl.DataFrame  # rep_name -> pseudonym (for frames that carry names without ids)

    def lookup(self, kind: str) -> dict[str, str]:
        """Real id -> pseudonym for ``kind`` (empty when that kind has no table)."""
        m = self.maps.get(kind)
        return {} if m is None else dict(zip(m["id"], m["pseudonym"], strict=True))


def _numbered(ids: pl.Series, *, prefix: str, salt: str) -> pl.DataFrame:
    unique = ids.drop_nulls().cast(pl.String).unique()
    width = len(str(max(unique.len(), 1)))
    order = (pl.lit(f"{salt}|{prefix}|") + pl.col("id")).hash(seed=0)
    return (
        pl.DataFrame({"id": unique})
        .with_columns(order.alias("_h"))
        .sort("_h", "id")
        .with_row_index("_n", offset=1)
        .select(
            "id",
            (pl.lit(prefix + " ") + pl.col("_n").cast(pl.String).str.zfill(width)).alias(
                "pseudonym"
            ),
        )
    )


def build_pseudonyms(
    *,
    reps: pl.DataFrame,
    accounts: pl.Series | None = None,
    contacts: pl.Series | None = None,
    salt: str = "effortlens",
) -> Pseudonyms:
    """Build the pseudonym tables from the whole data set (not a filtered view).

    Parameters
    ----------
    reps
        The reps table (``rep_id``, optional ``rep_name`` and ``manager_id``).
    accounts, contacts
        All account and contact ids that may appear in a view.
    salt
        Change it to get an unrelated set of pseudonyms.
    """
    maps = {"rep": _numbered(reps["rep_id"], prefix=_PREFIX["rep"], salt=salt)}
    if "manager_id" in reps.columns:
        maps["manager"] = _numbered(reps["manager_id"], prefix=_PREFIX["manager"], salt=salt)
    if accounts is not None:
        maps["account"] = _numbered(accounts, prefix=_PREFIX["account"], salt=salt)
    if contacts is not None:
        maps["contact"] = _numbered(contacts, prefix=_PREFIX["contact"], salt=salt)
    if "rep_name" in reps.columns:
        rep_names = (
            reps.select(pl.col("rep_name").alias("id"), pl.col("rep_id"))
            .drop_nulls("id")
            .unique("id", keep="first")
            .join(maps["rep"].rename({"id": "rep_id"}), on="rep_id", how="left")
            .select("id", "pseudonym")
        )
    else:
        rep_names = pl.DataFrame(schema={"id": pl.String, "pseudonym": pl.String})
    return Pseudonyms(maps=maps, rep_names=rep_names)


def anonymise_frame(frame: pl.DataFrame, pseudonyms: Pseudonyms) -> pl.DataFrame:
    """Replace every identifying column of ``frame`` by its pseudonym; returns a new frame.

    Ids missing from the tables (which should not happen when the tables were built from the
    whole data set) become ``"<Kind> ?"`` rather than leaking through.
    """
    out = frame
    for column, kind in _KIND_OF_COLUMN.items():
        if column not in out.columns:
            continue
        if column == "rep_name" and "rep_id" in frame.columns:
            mapping, key = pseudonyms.maps["rep"], frame["rep_id"]
        elif column == "rep_name":
            mapping, key = pseudonyms.rep_names, frame["rep_name"]
        elif kind in pseudonyms.maps:
            mapping, key = pseudonyms.maps[kind], frame[column]
        else:
            mapping, key = None, frame[column]
        if mapping is None:
            replaced = pl.Series(column, [None] * frame.height, dtype=pl.String)
        else:
            replaced = key.cast(pl.String).replace_strict(
                mapping["id"], mapping["pseudonym"], default=None, return_dtype=pl.String
            )
        replaced = pl.select(
            pl.when(key.is_null()).then(None).otherwise(replaced.fill_null(f"{_PREFIX[kind]} ?"))
        ).to_series()
        out = out.with_columns(replaced.alias(column))
    return out
