"""The partition plan's key triples from the Parquet files' dictionaries
(effortlens.partitioned._dictionary_triples) equal those of one group-by of every row's
text (_text_triples, the plan before): the same partitions, maps, tidy keys, on keys with
blanks around them, empty ones, rows keyed only by a contact or an opportunity, rows
without keys, a table without a key column, files written without dictionaries or whose
dictionaries give up part way through a row group, and many row groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from effortlens import partitioned

KEYS = ("account_id", "contact_id", "opportunity_id")


def _events(n: int, seed: int, *, untidy: bool) -> pl.DataFrame:
    """Real-looking key columns: accounts with their contacts and opportunities, some rows
    keyed only by a contact or an opportunity, some by none; contacts shared by two accounts
    (bridges); with ``untidy``, blanks around some values and some empty ones."""
    rng = np.random.default_rng(seed)
    account = rng.integers(0, 400, n)
    contact = account * 8 + rng.integers(0, 8, n)
    contact = np.where(rng.random(n) < 0.01, rng.integers(0, 3200, n), contact)  # bridges
    opportunity = account * 3 + rng.integers(0, 3, n)
    frame = pl.DataFrame(
        {
            "account_id": [f"ACC{a:06d}" for a in account],
            "contact_id": [f"CON{c:07d}" for c in contact],
            "opportunity_id": [f"OPP{o:06d}" for o in opportunity],
        }
    )
    draw = rng.random(n)
    frame = frame.with_columns(
        pl.when(pl.Series(draw < 0.15)).then(None).otherwise(pl.col("account_id")).alias(
            "account_id"
        ),
        pl.when(pl.Series((draw < 0.03) | (draw > 0.9))).then(None).otherwise(
            pl.col("contact_id")
        ).alias("contact_id"),
        pl.when(pl.Series((draw > 0.4) & (draw < 0.97) | (draw < 0.01))).then(None).otherwise(
            pl.col("opportunity_id")
        ).alias("opportunity_id"),
    )  # fmt: skip
    if untidy:
        pad = pl.Series(rng.random(n))
        frame = frame.with_columns(
            pl.when(pad < 0.05).then(pl.lit(" ") + pl.col("account_id")).otherwise(
                pl.col("account_id")
            ).alias("account_id"),
            pl.when(pad > 0.97).then(pl.lit("")).when(pad > 0.95).then(
                pl.col("contact_id") + "\t"
            ).otherwise(pl.col("contact_id")).alias("contact_id"),
            pl.when(pad < 0.002).then(pl.lit("  ")).otherwise(pl.col("opportunity_id")).alias(
                "opportunity_id"
            ),
        )  # fmt: skip
    return frame


def _folder(tmp: Path, *, untidy: bool, writer: str, contacts_in_actions: bool = True) -> Path:
    """A canonical folder of activities and buyer actions with keys as above."""
    folder = tmp / f"data-{untidy}-{writer}-{contacts_in_actions}"
    folder.mkdir()
    pl.DataFrame({"rep_id": ["r1"], "team": ["A"]}).write_parquet(folder / "reps.parquet")
    activities = _events(30_000, 1, untidy=untidy).with_columns(
        pl.format("a{}", pl.int_range(pl.len())).alias("activity_id"),
        pl.lit("r1").alias("rep_id"),
        pl.lit("2025-01-02T10:00:00Z").alias("ts"),
        pl.lit("email").alias("activity_type"),
    )
    actions = _events(9_000, 2, untidy=untidy).with_columns(
        pl.format("b{}", pl.int_range(pl.len())).alias("action_id"),
        pl.lit("2025-01-02T10:00:00Z").alias("ts"),
        pl.lit("reply").alias("action_type"),
    )
    if not contacts_in_actions:
        actions = actions.drop("contact_id")
    for name, frame in (("activities", activities), ("buyer_actions", actions)):
        path = folder / f"{name}.parquet"
        if writer == "polars":
            frame.write_parquet(path, row_group_size=4_000)
        elif writer == "plain":  # no dictionary at all
            pq.write_table(frame.to_arrow(), path, use_dictionary=False, row_group_size=7_000)
        else:  # dictionaries that fall back to plain pages within a row group
            pq.write_table(
                frame.to_arrow(),
                path,
                row_group_size=20_000,
                dictionary_pagesize_limit=2_000,
                data_page_size=1_000,
            )
    return folder


class _InPieces(pq.ParquetFile):
    """A Parquet file whose row groups are read as two pieces, each dictionary-encoded on
    its own (what Arrow's reader may give for a row group whose pages changed encoding)."""

    def read_row_group(self, i, columns=None, **options):
        table = super().read_row_group(i, columns=columns, **options)
        half = table.num_rows // 2
        pieces = {}
        for name in table.column_names:
            column = table.column(name)
            if not pa.types.is_dictionary(column.type):
                pieces[name] = column
                continue
            plain = column.cast(column.type.value_type)
            pieces[name] = pa.chunked_array(
                [pc.dictionary_encode(plain.slice(0, half).combine_chunks()),
                 pc.dictionary_encode(plain.slice(half).combine_chunks())]
            )  # fmt: skip
        found = pa.table(pieces)
        assert all(found.column(c).num_chunks == 2 for c in found.column_names)
        return found


def _by_text(sources: list[tuple[Path, dict[str, str]]], rows_to: Path | None = None):
    """The plan's triples as before: one group-by of every row's text."""
    scans = [
        pl.scan_parquet(file).select(
            pl.col(given[key]).cast(pl.String).alias(key)
            if key in given
            else pl.lit(None, pl.String).alias(key)
            for key in KEYS
        )
        for file, given in sources
    ]
    return partitioned._text_triples(scans)  # noqa: SLF001 - the plan before, to compare


def _plan(folder: Path, out: Path, monkeypatch, *, text: bool):
    with monkeypatch.context() as patch:
        if text:
            patch.setattr(partitioned, "_dictionary_triples", _by_text)
        return partitioned.plan_partitions(folder, out, chunk_rows=2_500)


def _triples(found) -> pl.DataFrame:
    """(account, contact, opportunity) as text and events, sorted."""
    codes, n, values, _ = found
    return pl.DataFrame(
        [values[j].gather(codes[j]).alias(key) for j, key in enumerate(KEYS)] + [n.alias("n")]
    ).sort(KEYS, nulls_last=True)


@pytest.mark.parametrize(
    ("untidy", "writer", "contacts"),
    [
        (False, "polars", True),
        (True, "polars", True),
        (True, "plain", True),
        (True, "fallback", True),
        (False, "fallback", False),
    ],
)
def test_the_dictionaries_plan_what_the_text_plans(tmp_path, monkeypatch, untidy, writer, contacts):
    folder = _folder(tmp_path, untidy=untidy, writer=writer, contacts_in_actions=contacts)
    sources = []
    for name in ("activities", "buyer_actions"):
        file = folder / f"{name}.parquet"
        sources.append((file, {k: k for k in KEYS if k in pl.read_parquet_schema(file)}))
    if writer == "fallback":  # Arrow's reader gives each row group's column in pieces of
        monkeypatch.setattr(pq, "ParquetFile", _InPieces)  # their own dictionaries
    by_dictionary = partitioned._dictionary_triples(sources)  # noqa: SLF001 - what is tested
    by_text = _by_text(sources)
    assert by_dictionary[3] == by_text[3]  # the same tidy keys
    assert (set(by_text[3]) == set(KEYS)) is not untidy
    for mine, theirs in zip(by_dictionary[2], by_text[2], strict=True):
        assert mine.to_list() == theirs.to_list()  # each key's distinct values, in order
    expected = _triples(by_text)
    assert expected.height > 1_000
    assert expected.filter(
        pl.col("account_id").is_null() & pl.col("contact_id").is_not_null()
    ).height
    assert expected.filter(pl.all_horizontal(pl.col(KEYS).is_null())).height == 1
    assert _triples(by_dictionary).equals(expected)

    plans = [_plan(folder, tmp_path / f"plan-{text}", monkeypatch, text=text) for text in (0, 1)]
    mine, theirs = plans
    assert (mine.count, mine.tidy, mine.keys) == (theirs.count, theirs.tidy, theirs.keys)
    assert mine.count > 3
    for a, b in zip(mine.maps, theirs.maps, strict=True):
        assert pl.read_parquet(a).sort(pl.all()).equals(pl.read_parquet(b).sort(pl.all()))


def test_keys_of_another_type_are_planned_from_their_text(tmp_path, monkeypatch):
    """Integer contacts: no dictionary of text; the plan groups their text as before."""
    folder = _folder(tmp_path, untidy=False, writer="polars")
    path = folder / "activities.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("contact_id").str.slice(3).cast(pl.Int64)).write_parquet(path)
    called = []
    with monkeypatch.context() as patch:
        patch.setattr(partitioned, "_dictionary_triples", lambda s, **_: called.append(s))
        plan = partitioned.plan_partitions(folder, tmp_path / "plan", chunk_rows=2_500)
    assert not called
    assert plan is not None and plan.count > 3
    contacts = pl.read_parquet(plan.maps[1])["contact_id"]
    assert contacts.str.contains("^[0-9]+$").any()  # the integers, as text


def test_a_file_arrow_cannot_read_is_not_planned(tmp_path):
    folder = _folder(tmp_path, untidy=False, writer="polars")
    path = folder / "buyer_actions.parquet"
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\0" * (len(data) // 2) + data[4 + len(data) // 2 :])
    assert partitioned.plan_partitions(folder, tmp_path / "plan", chunk_rows=2_500) is None


def test_a_large_string_file_is_read(tmp_path, monkeypatch):
    """Dictionaries of large strings (written by Arrow as such) are planned alike."""
    folder = _folder(tmp_path, untidy=True, writer="polars")
    path = folder / "buyer_actions.parquet"
    table = pq.read_table(path)
    schema = pa.schema(
        [f.with_type(pa.large_string()) if f.type == pa.string() else f for f in table.schema]
    )
    pq.write_table(table.cast(schema), path, row_group_size=3_000)
    plans = [_plan(folder, tmp_path / f"plan-{text}", monkeypatch, text=text) for text in (0, 1)]
    for a, b in zip(plans[0].maps, plans[1].maps, strict=True):
        assert pl.read_parquet(a).sort(pl.all()).equals(pl.read_parquet(b).sort(pl.all()))
