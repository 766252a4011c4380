"""A seeded mutator of data folders and the checks every load of a mutant must pass.

Used by ``tests/test_fuzz_loading.py`` (a few hundred cases in ``make test``) and by
``bench/fuzz.py`` (as many as asked). A case is a copy of a seed folder (the tiny sample cut
short, or a CRM fixture of ``tests/data/crm``) with one to three mutations drawn by a
``random.Random(seed)``: lines deleted, doubled, swapped or cut; quotes added or removed; line
ends changed (CR, CRLF, mixed); byte-order marks, invalid bytes, other encodings; fields
emptied or filled with hostile values; columns added, dropped or renamed; delimiters
changed; files emptied, truncated, deleted or turned into Parquet with odd types.

:func:`check_load` runs ``effortlens load DIR --json`` in this process and returns what went
wrong, if anything: an exit status other than 0 (loaded) or 2 (a message), a traceback, a
message naming no file, a broken ``loaded + quarantined == read``, physical lines that
disagree with an independent count, a line difference the notes do not explain, or a load
whose own peak memory (``VmHWM`` from the memory held before it, the peak reset first) went
over :data:`CASE_PEAK_MB`.

:data:`FIXED_EXAMPLES` are the inputs issue 10 found breaking the loaders, each built afresh
from the tiny sample or a CRM fixture (:func:`fixed_example`) and checked the same way, with
the exit status and the start of the message it must give.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from build_big import vm_mb  # noqa: E402  (one home for reading /proc/<pid>/status)

CRM = REPO / "tests" / "data" / "crm"
#: Data rows kept per file of the tiny sample in a canonical seed folder.
SEED_ROWS = 120
#: Most memory one load may take above what the process held before it (its own peak).
CASE_PEAK_MB = 512

HOSTILE_VALUES = [
    "",
    " ",
    '"',
    '""',
    "NaN",
    "inf",
    "-1",
    "1e309",
    "0x1F",
    "2024-13-45",
    "31/02/2024",
    "9999-12-31T23:59:59Z",
    "0000-00-00",
    "12,5",
    "1.234.567,89",
    "TRUE",
    "null",
    "\u00e9t\u00e9 \u2603 \U0001f600",
    "\u202eevil",
    "a" * 3000,
    "\\N",
    "=cmd|' /C calc'!A0",
    "R001",
    "R999",
    "x\ty",
    "'quoted'",
]


@dataclass
class Case:
    """One mutated folder: where it is, what it came from and what was done to it."""

    folder: Path
    seed_name: str
    seed: int
    mutations: list[str] = field(default_factory=list)
    status: int | str | None = None
    message: str = ""
    peak_mb: float = 0.0

    def describe(self) -> str:
        return f"{self.seed_name} seed={self.seed}: " + "; ".join(self.mutations)


def canonical_seed(tiny: Path, out: Path, *, rows: int = SEED_ROWS) -> Path:
    """The tiny sample cut to its first ``rows`` data rows per file (CSV), into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(tiny.glob("*.csv")):
        lines = path.read_bytes().splitlines(keepends=True)
        (out / path.name).write_bytes(b"".join(lines[: rows + 1]))
    return out


def crm_seeds() -> dict[str, Path]:
    """The CRM fixtures, by folder name."""
    return {p.name: p for p in sorted(CRM.iterdir()) if p.is_dir()}


def seed_folders(tiny: Path, work: Path) -> list[tuple[str, Path]]:
    """(name, folder) of every seed: the tiny sample (CSV) ``tiny`` cut short, then each CRM
    fixture that loads; one that loads only with a mapping (a generic CSV) gets its
    ``mapping-template`` written in a copy under ``work``, its unfilled value lines left out.
    A fixture that loads neither way (one being written beside the tests) is left out."""
    found = [("canonical", canonical_seed(tiny, work / "seed_canonical"))]
    for name, folder in crm_seeds().items():
        if run_cli(["load", str(folder), "--json"])[0] == 0:
            found.append((name, folder))
            continue
        status, template, _ = run_cli(["mapping-template", str(folder)])
        if status != 0 or (folder / "mapping.toml").exists():
            continue
        copy = work / f"seed_{name}"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(folder, copy)
        unfilled = re.compile(r'^\s*"[^"]*"\s*=\s*""\s*(#.*)?$')
        kept = [line for line in template.splitlines() if not unfilled.match(line)]
        (copy / "mapping.toml").write_text("\n".join(kept) + "\n")
        if run_cli(["load", str(copy), "--json"])[0] == 0:
            found.append((name, copy))
    return found


# --- mutations: each takes the folder and the random source, returns what it did ---------------


def _data_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".tsv", ".txt") and p.is_file()
    )


def _pick(rng: random.Random, folder: Path) -> Path | None:
    files = _data_files(folder)
    return rng.choice(files) if files else None


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _delete_line(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    del lines[i]
    _write_lines(path, lines)
    return f"{path.name}: line {i + 1} deleted"


def _delete_header(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if not lines:
        return None
    _write_lines(path, lines[1:])
    return f"{path.name}: header deleted"


def _duplicate_line(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    line = lines[i] if lines[i].endswith((b"\n", b"\r")) else lines[i] + b"\n"
    lines.insert(i, line)
    _write_lines(path, lines)
    return f"{path.name}: line {i + 1} doubled"


def _swap_lines(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 3:
        return None
    i, j = rng.sample(range(len(lines) - 1), 2)  # the last line may lack its line end
    lines[i], lines[j] = lines[j], lines[i]
    _write_lines(path, lines)
    return f"{path.name}: lines {i + 1} and {j + 1} swapped"


def _truncate(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    data = path.read_bytes()
    cut = rng.randrange(0, max(len(data), 1))
    path.write_bytes(data[:cut])
    return f"{path.name}: cut at byte {cut}"


def _stray_quote(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    line = lines[i]
    at = rng.randrange(0, max(len(line.rstrip(b"\r\n")), 1))
    lines[i] = line[:at] + b'"' + line[at:]
    _write_lines(path, lines)
    return f"{path.name}: a quote inserted in line {i + 1} at {at}"


def _quote_field_start(rng, folder):
    """An opening quote at the start of a field: the unbalanced quote that swallows lines."""
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 3:
        return None
    i = rng.randrange(1, len(lines) - 1)
    line = lines[i]
    commas = [m.start() for m in re.finditer(rb",", line)]
    at = rng.choice(commas) + 1 if commas else 0
    lines[i] = line[:at] + b'"' + line[at:]
    _write_lines(path, lines)
    return f"{path.name}: a quote opens a field of line {i + 1}"


def _line_ends(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    data = path.read_bytes().replace(b"\r\n", b"\n")
    style = rng.choice(["CR", "CRLF", "mixed", "LF-last-missing"])
    if style == "CR":
        data = data.replace(b"\n", b"\r")
    elif style == "CRLF":
        data = data.replace(b"\n", b"\r\n")
    elif style == "mixed":
        parts = data.split(b"\n")
        data = b"".join(p + rng.choice([b"\n", b"\r\n"]) for p in parts[:-1]) + parts[-1]
    else:
        data = data.rstrip(b"\n")
    path.write_bytes(data)
    return f"{path.name}: line ends {style}"


def _encoding(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    data = path.read_bytes()
    kind = rng.choice(["bom", "bom+bad", "cp1252", "utf16", "bad", "nul"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "bom+bad":
        at = rng.randrange(0, max(len(data), 1))
        data = b"\xef\xbb\xbf" + data[:at] + b"\xff\xfe" + data[at:]
    elif kind == "cp1252":
        data = (text + "Zo\u00eb\n").encode("cp1252", errors="replace")
    elif kind == "utf16":
        data = text.encode("utf-16")
    elif kind == "bad":
        at = rng.randrange(0, max(len(data), 1))
        data = data[:at] + bytes([rng.randrange(128, 256)]) + data[at:]
    else:
        at = rng.randrange(0, max(len(data), 1))
        data = data[:at] + b"\x00" + data[at:]
    path.write_bytes(data)
    return f"{path.name}: encoding {kind}"


def _flip_bytes(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    data = bytearray(path.read_bytes())
    if not data:
        return None
    spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 5))]
    for at in spots:
        data[at] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return f"{path.name}: bytes flipped at {spots}"


def _split_fields(line: bytes, delimiter: bytes = b",") -> list[bytes]:
    return line.rstrip(b"\r\n").split(delimiter)


def _delimiter(path: Path) -> bytes:
    head = path.read_bytes()[:2000].split(b"\n", 1)[0]
    return max([b",", b";", b"\t", b"|"], key=head.count)


def _replace_field(rng, folder, new_value):
    """Replace one field of one data line by ``new_value(rng)`` -> (bytes, what was done)."""
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    delimiter = _delimiter(path)
    i = rng.randrange(1, len(lines))
    fields = _split_fields(lines[i], delimiter)
    j = rng.randrange(len(fields))
    encoded, what = new_value(rng, delimiter)
    fields[j] = encoded
    end = lines[i][len(lines[i].rstrip(b"\r\n")) :]
    lines[i] = delimiter.join(fields) + end
    _write_lines(path, lines)
    return f"{path.name}: line {i + 1} field {j + 1} {what}"


def _hostile_value(rng, folder):
    def hostile(rng, delimiter):
        value = rng.choice(HOSTILE_VALUES)
        encoded = value.encode("utf-8")
        if delimiter in encoded or b'"' in encoded or b"\n" in encoded:
            encoded = b'"' + encoded.replace(b'"', b'""') + b'"'
        return encoded, f"= {value[:20]!r}"

    return _replace_field(rng, folder, hostile)


def _empty_field(rng, folder):
    return _replace_field(rng, folder, lambda rng, delimiter: (b"", "emptied"))


def _extra_field(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    delimiter = _delimiter(path)
    i = rng.randrange(0, len(lines))
    body = lines[i].rstrip(b"\r\n")
    end = lines[i][len(body) :]
    if rng.random() < 0.5:
        lines[i] = body + delimiter + b"extra" + end
        what = "a field added to"
    else:
        lines[i] = body.rsplit(delimiter, 1)[0] + end
        what = "the last field dropped from"
    _write_lines(path, lines)
    return f"{path.name}: {what} line {i + 1}"


def _rename_column(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if not lines:
        return None
    delimiter = _delimiter(path)
    fields = _split_fields(lines[0], delimiter)
    j = rng.randrange(len(fields))
    new = rng.choice([b"", fields[(j + 1) % len(fields)], fields[j].upper(), b"x" * 300])
    fields[j] = new
    end = lines[0][len(lines[0].rstrip(b"\r\n")) :]
    lines[0] = delimiter.join(fields) + end
    _write_lines(path, lines)
    return f"{path.name}: header field {j + 1} renamed to {new[:20]!r}"


def _change_delimiter(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    new = rng.choice([b";", b"\t", b"|"])
    data = path.read_bytes().replace(_delimiter(path), new)
    path.write_bytes(data)
    return f"{path.name}: delimiter {new!r}"


def _empty_file(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    kind = rng.choice(["empty", "header only", "blank lines"])
    lines = _lines(path)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "header only":
        path.write_bytes(lines[0] if lines else b"")
    else:
        _write_lines(path, lines[:1] + [b"\n"] * rng.randint(1, 5) + lines[1:])
    return f"{path.name}: {kind}"


def _delete_file(rng, folder):
    path = _pick(rng, folder)
    if path is None:
        return None
    path.unlink()
    return f"{path.name}: deleted"


def _to_parquet(rng, folder):
    import polars as pl

    path = _pick(rng, folder)
    if path is None:
        return None
    try:
        frame = pl.read_csv(path, infer_schema_length=50, truncate_ragged_lines=True)
    except Exception:  # the mutant may already be unreadable: leave it as text
        return None
    kind = rng.choice(["typed", "list column", "struct column", "int ids", "nulls"])
    if kind == "list column" and frame.width:
        column = rng.choice(frame.columns)
        frame = frame.with_columns(pl.concat_list(pl.col(column).cast(pl.String)).alias(column))
    elif kind == "struct column" and frame.width:
        column = rng.choice(frame.columns)
        frame = frame.with_columns(pl.struct(pl.col(column)).alias(column))
    elif kind == "int ids" and frame.width:
        column = frame.columns[0]
        frame = frame.with_columns(pl.int_range(pl.len()).alias(column))
    elif kind == "nulls" and frame.width:
        column = rng.choice(frame.columns)
        frame = frame.with_columns(pl.lit(None).alias(column))
    path.unlink()
    frame.write_parquet(path.with_suffix(".parquet"))
    return f"{path.name}: as Parquet ({kind})"


def _long_value(rng, folder):
    path = _pick(rng, folder)
    lines = _lines(path) if path else []
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    body = lines[i].rstrip(b"\r\n")
    end = lines[i][len(body) :]
    lines[i] = body + b"z" * rng.choice([10_000, 200_000]) + end
    _write_lines(path, lines)
    return f"{path.name}: line {i + 1} made long"


MUTATIONS = [
    (_delete_line, 6),
    (_delete_header, 1),
    (_duplicate_line, 4),
    (_swap_lines, 2),
    (_truncate, 3),
    (_stray_quote, 4),
    (_quote_field_start, 4),
    (_line_ends, 4),
    (_encoding, 4),
    (_flip_bytes, 4),
    (_hostile_value, 8),
    (_empty_field, 4),
    (_extra_field, 3),
    (_rename_column, 3),
    (_change_delimiter, 2),
    (_empty_file, 2),
    (_delete_file, 1),
    (_to_parquet, 2),
    (_long_value, 1),
]


def mutate(seed_folder: Path, out: Path, *, seed: int, seed_name: str) -> Case:
    """A copy of ``seed_folder`` in ``out`` with one to three seeded mutations."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(seed_folder, out)
    rng = random.Random(seed)
    case = Case(out, seed_name, seed)
    functions, weights = zip(*MUTATIONS, strict=True)
    for _ in range(rng.choice([1, 1, 2, 3])):
        for _attempt in range(5):
            what = rng.choices(functions, weights)[0](rng, out)
            if what:
                case.mutations.append(what)
                break
    return case


# --- what every load must do -----------------------------------------------------------------


def physical_lines(path: Path) -> int | None:
    """Data lines of a text file (header excluded), counted the simplest way there is."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeError:
            return None
    crlf = data.count(b"\r\n")
    if data.count(b"\r") - crlf > data.count(b"\n") - crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return max(len(lines) - 1, 0)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``effortlens ARGS`` in this process: exit status, stdout, stderr (never raises)."""
    from effortlens.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
        except BaseException as raised:  # noqa: BLE001 - what the check is about
            import traceback

            traceback.print_exc(file=err)
            status = f"raised {type(raised).__name__}"
    return status, out.getvalue(), err.getvalue()


def _reset_peak() -> bool:
    """Start this process's ``VmHWM`` afresh from what it holds now (Linux: ``5`` written to
    ``/proc/self/clear_refs``); ``False`` where the system cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def check_load(case: Case, *, peak_mb: float = CASE_PEAK_MB) -> list[str]:
    """What went wrong loading ``case`` (empty when all held)."""
    folder = case.folder
    before = vm_mb("self", "VmRSS")
    measured = _reset_peak()
    status, out, err = run_cli(["load", str(folder), "--json"])
    case.status, case.message = status, err.strip()
    case.peak_mb = vm_mb("self", "VmHWM") - before if measured else 0.0
    problems = []
    if case.peak_mb > peak_mb:
        problems.append(f"the load took {case.peak_mb:,.0f} MB, more than {peak_mb:,.0f} MB")
    if "Traceback" in err or "Traceback" in out:
        problems.append("a traceback was printed")
    if status == 2:
        message = err.strip()
        names = [p.name for p in folder.iterdir()] + [folder.name]
        if not message.startswith("effortlens: "):
            problems.append(f"message not prefixed: {message[:200]!r}")
        if not any(name in message for name in names):
            problems.append(f"message names no file: {message[:300]!r}")
        return problems
    if status != 0:
        problems.append(f"exit status {status}: {err.strip()[:600]}")
        return problems
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        return problems + [f"not JSON: {out[:200]!r}"]
    for table, entry in report.items():
        quarantined = sum(entry["quarantined"].values())
        if entry["loaded"] + quarantined != entry["read"]:
            problems.append(f"{table}: loaded {entry['loaded']} + {quarantined} != {entry['read']}")
        lines = entry.get("lines")
        if lines is None or not entry.get("file"):
            continue
        path = folder / entry["file"]
        expected = physical_lines(path) if path.is_file() else None
        if expected is not None and lines["physical"] != expected:
            problems.append(f"{table}: {lines['physical']} lines reported, {expected} counted")
        if lines["physical"] != entry["read"] + lines["blank"] + lines["quoted"]:
            problems.append(
                f"{table}: {lines['physical']} physical lines != read {entry['read']} + blank "
                f"{lines['blank']} + quoted {lines['quoted']}"
            )
    if not any("lines" in entry for entry in report.values()):
        problems += _export_lines(folder)
    return problems


def _export_lines(folder: Path) -> list[str]:
    """An export folder: each text file the load read has as many lines as the simplest count
    finds, in the report too (its per-file ``lines``: physical = rows + blank + quoted, else
    flagged as LINES NOT READ), a record the reader missed is flagged in the report's notes,
    and a file it did not read is named there."""
    from effortlens.adapters import detect_format, load_any
    from effortlens.adapters.reading import data_files
    from effortlens.loading import guard
    from effortlens.loading.delimited import read_text_table

    report = load_any(folder).report
    notes = "\n".join(report.notes)
    read = {f.file for f in getattr(report, "files", ()) if not f.derived}
    detection = detect_format(folder)
    used = {p.name for paths in detection.files.values() for p in paths}
    problems = []
    for path in data_files(folder):
        if detection.format in ("salesforce", "hubspot") and path.name not in used:
            if f"ignored file {path.name}" not in notes:
                problems.append(f"{path.name}: neither read nor named in the notes")
        if path.name not in read:
            continue
        if path.suffix.lower() == ".parquet":
            continue
        with guard.load_scope():
            text = read_text_table(path, set_aside_surplus=True)
        expected = physical_lines(path)
        counted = text.count.lines - 1  # the header's first line
        if expected is not None and counted != expected:
            problems.append(f"{path.name}: {counted} lines of data counted, {expected} expected")
        if text.lost and f"{path.name}: counting the lines finds" not in notes:
            problems.append(f"{path.name}: records the reader missed are not in the notes")
        lines = next(f.lines for f in report.files if f.file == path.name)
        if lines is None:
            problems.append(f"{path.name}: read, but its physical lines are not in the report")
            continue
        if expected is not None and lines.physical != expected:
            problems.append(f"{path.name}: {lines.physical} lines reported, {expected} counted")
        flagged = any(p.startswith(f"{path.name}: ") for p in report.lines_not_read())
        if lines.unaccounted and not flagged:
            problems.append(f"{path.name}: {lines.unaccounted} lines not read, not flagged")
    return problems


# --- the inputs issue 10 found: fixed examples ---------------------------------------------------


def _copy_seed(folder: Path, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("_truth*", "truth.json"))
    return out


def _rewrite(path: Path, change) -> None:
    path.write_bytes(change(path.read_bytes()))


def _bare_cr(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def _r024_deleted(folder: Path) -> None:
    _rewrite(folder / "reps.csv", lambda d: re.sub(rb"(?m)^R024,[^\n]*\n", b"", d))


def _cr_all(folder: Path) -> None:
    for path in _data_files(folder):
        _rewrite(path, _bare_cr)


def _unbalanced_quote(folder: Path) -> None:
    # line 5 opens a quote at the start of a field, line 15 closes it: 11 lines become one row
    lines = _lines(folder / "activities.csv")
    opened, closing = lines[4].split(b","), lines[14].split(b",")
    opened[6], closing[6] = b'"' + opened[6], closing[6] + b'"'
    lines[4], lines[14] = b",".join(opened), b",".join(closing)
    _write_lines(folder / "activities.csv", lines)


def _wide_header(folder: Path) -> None:
    header = ",".join(f"column_{i}" for i in range(100_000))
    (folder / "activities.csv").write_text(header + "\n" + ("x" + "," * 99_999 + "\n") * 6)


def _constant_parquet(folder: Path) -> None:
    """20M identical activities in a few MB (built by Arrow as dictionary codes: ~20 MB)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "activities.csv").unlink()
    codes = pa.array(np.zeros(20_000_000, dtype=np.int8))
    row = {"activity_id": "ACT1", "rep_id": "R001", "ts": "2025-01-06T14:12:25Z"}
    table = pa.table(
        {
            **{k: pa.DictionaryArray.from_arrays(codes, pa.array([v])) for k, v in row.items()},
            "activity_type": pa.DictionaryArray.from_arrays(codes, pa.array(["call"])),
        }
    )
    pq.write_table(table, folder / "activities.parquet", row_group_size=20_000_000)


def _long_value_parquet(folder: Path) -> None:
    """3,000 reps named by one value of a million characters: a few KB, 2.9 GB once copied."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "reps.csv").unlink()
    codes = pa.array(np.zeros(3000, dtype=np.int8))
    table = pa.table(
        {
            "rep_id": [f"R{i:05}" for i in range(3000)],
            "rep_name": pa.DictionaryArray.from_arrays(codes, pa.array(["N" * 10**6])),
        }
    )
    pq.write_table(table, folder / "reps.parquet", compression="zstd")


def _bom_bad_bytes(folder: Path) -> None:
    _rewrite(folder / "reps.csv", lambda d: b"\xef\xbb\xbf" + d.replace(b"R003,", b"R003,\xff", 1))


def _list_column(folder: Path) -> None:
    import polars as pl

    activities = pl.read_csv(folder / "activities.csv", infer_schema=False)
    (folder / "activities.csv").unlink()
    activities.with_columns(pl.concat_list("activity_type")).write_parquet(
        folder / "activities.parquet"
    )


def _no_team_column(folder: Path) -> None:
    import polars as pl

    owners = pl.read_csv(folder / "owners.csv", infer_schema=False)
    owners.drop("teams").write_csv(folder / "owners.csv")


def _bad_time_zone(folder: Path) -> None:
    (folder / "settings.toml").write_text('timezone = "Mars/Olympus_Mons"\n')


#: name -> (seed: "tiny" or a CRM fixture, how the folder is changed, exit status, message start
#: or None). Unreadable files, panics and damaged caches need a monkeypatch or a build, and are
#: fixed examples of tests/test_loading_guard.py and tests/test_build.py.
FIXED_EXAMPLES = {
    "rep R024 deleted (was a panic)": ("tiny", _r024_deleted, 0, None),
    "bare CR line ends, canonical": (
        "tiny",
        lambda f: _rewrite(f / "activities.csv", _bare_cr),
        0,
        None,
    ),
    "bare CR line ends, Salesforce": ("salesforce", _cr_all, 0, None),
    "bare CR line ends, HubSpot": ("hubspot", _cr_all, 0, None),
    "an unbalanced quote merging 11 lines": ("tiny", _unbalanced_quote, 0, None),
    "a header of 100,000 columns": (
        "tiny",
        _wide_header,
        2,
        "activities.csv: line 1 (the header) has 100,000 columns",
    ),
    "20M constant rows in a small Parquet": (
        "tiny",
        _constant_parquet,
        2,
        "activities.parquet: 20,000,000 rows in",
    ),
    "a few KB of Parquet taking gigabytes": (
        "tiny",
        _long_value_parquet,
        2,
        "reps.parquet: its values take",
    ),
    "invalid bytes after a UTF-8 BOM": (
        "tiny",
        _bom_bad_bytes,
        2,
        "reps.csv: line 4, column 6: byte 0xff is not UTF-8",
    ),
    "a Parquet list column": (
        "tiny",
        _list_column,
        2,
        "activities.parquet: column activity_type holds List(String)",
    ),
    # found by the fuzzer (bench/fuzz.py, seed 10781): a Polars error in the owners reader
    "a HubSpot owners export without teams": ("hubspot_api", _no_team_column, 0, None),
    "a bad time zone in DIR/settings.toml": (
        "tiny",
        _bad_time_zone,
        2,
        "settings.toml: timezone must be",
    ),
}


def fixed_example(name: str, tiny: Path, out: Path) -> Case:
    """The folder of fixed example ``name`` in ``out``, from the tiny sample (CSV) ``tiny``."""
    seed, change, _, _ = FIXED_EXAMPLES[name]
    folder = _copy_seed(tiny if seed == "tiny" else CRM / seed, out)
    change(folder)
    return Case(folder, seed, 0, [name])
