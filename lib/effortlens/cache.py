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

The cache directory is ``$EFFORTLENS_CACHE`` if set, else ``.cache/effortlens`` under the
current working directory (git-ignored).

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
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import polars as pl

from effortlens.settings import Settings

#: Environment variable naming the cache directory.
CACHE_ENV = "EFFORTLENS_CACHE"

#: Modules whose source is part of the fingerprint: changing them invalidates the cache.
_CODE_MODULES = ("enrich.py", "attribution.py", "cache.py", "peers.py")


def default_cache_dir() -> Path:
    """``$EFFORTLENS_CACHE``, else ``.cache/effortlens`` under the current directory.

    Examples
    --------
    >>> default_cache_dir()  # doctest: +SKIP
    PosixPath('/home/analyst/project/.cache/effortlens')
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.cwd() / ".cache" / "effortlens"


def _code_version() -> bytes:
    package = resources.files("effortlens")
    digest = hashlib.sha256()
    for name in _CODE_MODULES:
        digest.update(package.joinpath(name).read_bytes())
    return digest.digest()


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


def read_cached(
    cache_dir: Path, key: str, *, names: Iterable[str]
) -> dict[str, pl.DataFrame] | None:
    """The frames cached under ``key``, or ``None`` when any of ``names`` is missing.

    Examples
    --------
    >>> import tempfile
    >>> read_cached(Path(tempfile.mkdtemp()), "nokey", names=["daily"]) is None
    True
    """
    folder = Path(cache_dir) / key
    paths = {name: folder / f"{name}.parquet" for name in names}
    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        return {name: pl.read_parquet(path) for name, path in paths.items()}
    except (OSError, pl.exceptions.PolarsError):
        return None  # a damaged entry is recomputed, never served


def write_cached(cache_dir: Path, key: str, frames: Mapping[str, pl.DataFrame]) -> Path:
    """Write ``frames`` under ``cache_dir/key/`` atomically; returns that folder.

    The frames go to a temporary sibling folder first and are renamed into place, so a reader
    never sees half an entry. An existing entry with the same key is kept as it is.

    Examples
    --------
    >>> import polars as pl, tempfile
    >>> folder = write_cached(Path(tempfile.mkdtemp()), "k", {"a": pl.DataFrame({"x": [1]})})
    >>> sorted(p.name for p in folder.iterdir())
    ['a.parquet']
    """
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        for name, frame in frames.items():
            # one row group: read back, every column is one chunk, which enrichment cuts into
            # the input's chunks without copying
            frame.write_parquet(
                staging / f"{name}.parquet", statistics=True, row_group_size=max(frame.height, 1)
            )
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race to a writer of the same key: theirs is fine
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
