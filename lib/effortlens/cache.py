"""The enrichment cache: enriched facts as Parquet, keyed by what they were computed from.

A load is enriched once; the result is written under ``<cache dir>/<fingerprint>/`` and read
back on the next load of the same data with the same settings and the same code. The
fingerprint covers

- every input table's content and row order (``DataFrame.hash_rows`` of the rows with their
  row numbers, summed, plus height and schema: about 0.3 s for 10M activities; order counts
  because the enriched activities keep it and ties in attribution go to the later row),
- ``Settings.fingerprint()``,
- the Polars version (row hashes are only stable within one version) and the source of the
  enrichment modules, so a code change never serves stale facts.

The cache directory is ``$EFFORTLENS_CACHE`` if set, else the per-user cache directory
(``platformdirs.user_cache_dir("effortlens")``, e.g. ``~/.cache/effortlens`` on Linux): one
place, whatever the working directory, and never inside a data folder or the repository
(:func:`check_cache_dir` refuses those). Built facts (:mod:`effortlens.facts`) live under
``builds/`` there, these per-load entries under ``enriched/``.

Every entry has a ``manifest.json`` with the SHA-256 of each file. A read verifies them: a
damaged, foreign or tampered entry (byte flips, a valid Parquet file of another table, the same
schema with other values) is reported once (a :class:`CacheWarning`), deleted and recomputed,
never served.

Examples
--------
>>> import polars as pl, tempfile
>>> from pathlib import Path
>>> from effortlens.settings import load_settings
>>> tables = {"reps": pl.DataFrame({"rep_id": ["r1"]})}
>>> key = fingerprint(tables, load_settings())
>>> folder = Path(tempfile.mkdtemp())
>>> entry = write_cached(folder, key, {"reps": tables["reps"]})
>>> read_cached(folder, key, names=["reps"])["reps"].height
1
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import polars as pl

from effortlens.loading.report import DataError
from effortlens.settings import Settings

#: Environment variable naming the cache directory.
CACHE_ENV = "EFFORTLENS_CACHE"
#: Name of the per-entry manifest (file name -> size and SHA-256).
MANIFEST = "manifest.json"
#: Subfolder of the cache directory holding the per-load entries of :func:`write_cached`.
ENRICHED_DIR = "enriched"


class CacheWarning(UserWarning):
    """A cache entry was damaged (or could not be written); it is recomputed."""


class CacheLocationError(DataError):
    """The cache directory would be inside a data folder or the repository."""


#: Modules whose source is part of the fingerprint: changing them invalidates the cache.
_CODE_MODULES = ("enrich.py", "attribution.py", "cache.py", "peers.py")


def default_cache_dir() -> Path:
    """``$EFFORTLENS_CACHE``, else the per-user cache directory (``user_cache_dir``).

    Examples
    --------
    >>> default_cache_dir()  # doctest: +SKIP
    PosixPath('/home/analyst/.cache/effortlens')
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("effortlens", appauthor=False)).resolve()


def repository_root() -> Path | None:
    """The source checkout this package runs from (editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def check_cache_dir(cache_dir: Path | str, *, data: Path | str | None = None) -> Path:
    """``cache_dir`` resolved, refused when inside the data folder ``data`` or the repository.

    Raises
    ------
    CacheLocationError
        Naming both folders and how to choose another place (``$EFFORTLENS_CACHE``).

    Examples
    --------
    >>> import tempfile
    >>> data = Path(tempfile.mkdtemp())
    >>> try:
    ...     check_cache_dir(data / ".cache", data=data)
    ... except CacheLocationError as err:
    ...     print("refused")
    refused
    """
    root = Path(cache_dir).expanduser().resolve()
    forbidden = []
    if data is not None:
        folder = Path(data).expanduser().resolve()
        forbidden.append(("the data folder", folder if folder.is_dir() else folder.parent))
    repo = repository_root()
    if repo is not None:
        forbidden.append(("the EffortLens repository", repo))
    for what, folder in forbidden:
        if root == folder or folder in root.parents:
            raise CacheLocationError(
                f"the cache directory {root} is inside {what} {folder}; set {CACHE_ENV} to a "
                "folder elsewhere (default: the per-user cache directory)"
            )
    return root


def _code_version() -> bytes:
    package = resources.files("effortlens")
    digest = hashlib.sha256()
    for name in _CODE_MODULES:
        digest.update(package.joinpath(name).read_bytes())
    return digest.digest()


def scratch_dir(parent: Path, name: str) -> Path:
    """A new working folder ``parent/.NAME-PID-XXXXXXXX`` for a build being written.

    First deletes the working folders of ``parent`` whose process is gone: a build killed
    outright (SIGKILL, a closed terminal, the machine's memory killer) runs no cleanup, and its
    folder would otherwise stay, however large, until the cache is emptied by hand.

    Examples
    --------
    >>> parent = Path(tempfile.mkdtemp())
    >>> scratch_dir(parent, "build").name.startswith(f".build-{os.getpid()}-")
    True
    """
    parent.mkdir(parents=True, exist_ok=True)
    for path in parent.glob(".*-*-*"):
        pid = path.name.rsplit("-", 2)[-2]
        if path.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours to signal
        return True
    return True


def fingerprint(tables: Mapping[str, pl.DataFrame], settings: Settings) -> str:
    """A hex key for the enriched facts of ``tables`` under ``settings`` and this code.

    Parameters
    ----------
    tables
        Canonical table name to frame.
    settings
        The validated settings.

    Examples
    --------
    >>> import polars as pl
    >>> from effortlens.settings import load_settings
    >>> a = fingerprint({"reps": pl.DataFrame({"rep_id": ["r1"]})}, load_settings())
    >>> b = fingerprint({"reps": pl.DataFrame({"rep_id": ["r2"]})}, load_settings())
    >>> len(a), a == b
    (24, False)
    """
    digest = hashlib.sha256()
    digest.update(f"polars {pl.__version__}\n".encode())
    digest.update(_code_version())
    digest.update(settings.fingerprint().encode())
    for name in sorted(tables):
        frame = tables[name]
        # hash_rows of a frame with no columns is undefined; its height says it all
        content = int(frame.with_row_index("_row").hash_rows().sum()) if frame.width else 0
        digest.update(f"\n{name} {frame.height} {frame.schema} {content}".encode())
    return digest.hexdigest()[:24]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_entry(folder: Path) -> str:
    """``""`` when every file of ``folder`` matches its manifest, else what is wrong.

    Examples
    --------
    >>> import tempfile
    >>> verify_entry(Path(tempfile.mkdtemp()))
    'manifest.json unreadable'
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} unreadable"
    if manifest.get("key") != folder.name:
        return f"{MANIFEST} belongs to entry {manifest.get('key')!r}"
    present = {p.name for p in folder.iterdir() if p.name != MANIFEST}
    if present != set(files):
        return f"files {sorted(present ^ set(files))} differ from the manifest"
    for name, expected in files.items():
        path = folder / name
        if path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
            return f"{name} fails its checksum"
    return ""


def read_cached(
    cache_dir: Path, key: str, *, names: Iterable[str]
) -> dict[str, pl.DataFrame] | None:
    """The frames cached under ``key``, or ``None`` when absent or damaged.

    A damaged entry (checksum, manifest or Parquet) is reported once by a
    :class:`CacheWarning` and deleted, so the caller recomputes and writes it again.

    Examples
    --------
    >>> import tempfile
    >>> read_cached(Path(tempfile.mkdtemp()), "nokey", names=["daily"]) is None
    True
    """
    folder = Path(cache_dir) / ENRICHED_DIR / key
    if not folder.is_dir():
        return None
    paths = {name: folder / f"{name}.parquet" for name in names}
    problem = verify_entry(folder)
    if not problem and not all(p.is_file() for p in paths.values()):
        problem = "a table is missing"
    if not problem:
        try:
            return {name: pl.read_parquet(path) for name, path in paths.items()}
        except (OSError, pl.exceptions.PolarsError, pl.exceptions.PanicException) as err:
            problem = f"unreadable ({type(err).__name__})"  # a panic too: a BaseException
    warnings.warn(
        f"enrichment cache entry {folder} was damaged ({problem}): deleted, recomputing",
        CacheWarning,
        stacklevel=3,
    )
    shutil.rmtree(folder, ignore_errors=True)
    return None


def write_cached(cache_dir: Path, key: str, frames: Mapping[str, pl.DataFrame]) -> Path:
    """Write ``frames`` under ``cache_dir/enriched/key/`` atomically, with a manifest of
    checksums; returns that folder.

    The frames go to a temporary sibling folder first and are renamed into place, so a reader
    never sees half an entry. An existing entry with the same key is kept as it is.

    Examples
    --------
    >>> import polars as pl, tempfile
    >>> folder = write_cached(Path(tempfile.mkdtemp()), "k", {"a": pl.DataFrame({"x": [1]})})
    >>> sorted(p.name for p in folder.iterdir())
    ['a.parquet', 'manifest.json']
    """
    root = Path(cache_dir) / ENRICHED_DIR
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        files = {}
        for name, frame in frames.items():
            path = staging / f"{name}.parquet"
            # one row group: read back, every column is one chunk, which enrichment cuts into
            # the input's chunks without copying
            frame.write_parquet(path, statistics=True, row_group_size=max(frame.height, 1))
            files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        (staging / MANIFEST).write_text(json.dumps({"key": key, "files": files}), "utf-8")
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race to a writer of the same key: theirs is fine
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
