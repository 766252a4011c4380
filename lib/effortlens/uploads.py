"""Files uploaded in a page: a size limit, a folder per session, deleted when it ends.

Uploads are written under ``<cache>/uploads/session-*/`` (the cache is
:func:`effortlens.cache.default_cache_dir`), one folder per :class:`UploadSession`, which a
page makes when it is first asked to load uploaded files. The folder, with the build made from
it, is deleted:

- when the session object goes away or the kernel process ends (``weakref.finalize``, which
  also runs at exit);
- otherwise (a kernel killed before it could clean up) by :func:`sweep`, run when a page
  starts, once the folder is older than the settings age.

Settings (environment variables, read when used):

- ``EFFORTLENS_UPLOAD_MAX_MB`` (default 10): the most one upload may hold, all files together;
  Jupyter's websocket carries at most 10 MiB in one message unless the server is told more;
- ``EFFORTLENS_UPLOAD_MAX_AGE_HOURS`` (default 24): uploads older than this are swept.

Examples
--------
>>> session = UploadSession()
>>> folder = session.save([{"name": "reps.csv", "content": b"rep_id\\nR1\\n"}])
>>> sorted(p.name for p in folder.iterdir())
['reps.csv']
>>> session.close()
>>> folder.exists()
False
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

from effortlens.loading.paths import UnsafePath, inside
from effortlens.loading.report import DataError

MAX_MB_ENV = "EFFORTLENS_UPLOAD_MAX_MB"
MAX_AGE_ENV = "EFFORTLENS_UPLOAD_MAX_AGE_HOURS"
DEFAULT_MAX_MB = 10.0
DEFAULT_MAX_AGE_HOURS = 24.0
#: File types an upload may hold (the page's file chooser offers the same).
SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt", ".parquet", ".toml")
_PREFIXES = ("session-", "upload-")


def _number(env: str, default: float) -> float:
    try:
        value = float(os.environ.get(env, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def max_upload_bytes() -> int:
    """The most one upload may hold, in bytes (``EFFORTLENS_UPLOAD_MAX_MB``, default 10 MB).

    Examples
    --------
    >>> import os
    >>> os.environ["EFFORTLENS_UPLOAD_MAX_MB"] = "2.5"
    >>> max_upload_bytes()
    2500000
    >>> del os.environ["EFFORTLENS_UPLOAD_MAX_MB"]
    """
    return int(_number(MAX_MB_ENV, DEFAULT_MAX_MB) * 1_000_000)


def max_age_seconds() -> float:
    """Age after which an upload folder is swept (``EFFORTLENS_UPLOAD_MAX_AGE_HOURS``, 24 h).

    Examples
    --------
    >>> max_age_seconds()
    86400.0
    """
    return _number(MAX_AGE_ENV, DEFAULT_MAX_AGE_HOURS) * 3600


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def nothing_arrived_message() -> str:
    """What to tell a viewer who pressed Load with no uploaded file in the kernel.

    Either no file was chosen, or the files were too big to reach the server at all.

    Examples
    --------
    >>> "10.0 MB" in nothing_arrived_message()
    True
    """
    return (
        "no uploaded file arrived: choose the files to upload (reps.csv, activities.csv, …), "
        f"then press Load. An upload may hold at most {_megabytes(max_upload_bytes())} in all; "
        "bigger files do not reach the server: ask whoever runs EffortLens to put them in a "
        "data folder"
    )


def uploads_root(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/uploads``, the folder every session's uploads live under."""
    if cache_dir is None:
        from effortlens.cache import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "uploads"


def check_uploads(
    uploads: Iterable[Mapping], *, limit: int | None = None
) -> list[tuple[str, bytes]]:
    """The uploaded files as ``(name, content)``, refused when too big or of another type.

    Parameters
    ----------
    uploads
        ``FileUpload.value``: ``{"name": ..., "content": bytes-like}`` items.
    limit
        Most bytes in all; default :func:`max_upload_bytes`.

    Raises
    ------
    DataError
        Nothing uploaded, too big (saying the size and the limit), a file type that is not
        read, or a name that is not a plain file name.

    Examples
    --------
    >>> check_uploads([{"name": "big.csv", "content": b"x" * 30}], limit=20)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effortlens.loading.report.DataError: the upload holds 0.0 MB (big.csv 0.0 MB); at most ...
    """
    limit = max_upload_bytes() if limit is None else limit
    files: list[tuple[str, bytes]] = []
    for item in uploads or ():
        raw = str(item.get("name", ""))
        name = Path(raw.replace("\\", "/")).name.strip()  # never a path from the browser
        if not name or name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
            raise DataError(
                f"{raw!r} cannot be uploaded: upload {', '.join(SUFFIXES)} files "
                "(CSV or Parquet exports, a mapping.toml or settings.toml)"
            )
        files.append((name, bytes(item.get("content", b""))))
    if not files:
        raise DataError(nothing_arrived_message())
    total = sum(len(content) for _, content in files)
    if total > limit:
        biggest = max(files, key=lambda f: len(f[1]))
        raise DataError(
            f"the upload holds {_megabytes(total)} ({biggest[0]} {_megabytes(len(biggest[1]))}); "
            f"at most {_megabytes(limit)} may be uploaded: ask whoever runs EffortLens to put "
            "the files in a data folder"
        )
    return files


def refuse_uploaded_limits(folder: str | Path) -> None:
    """Refuse an uploaded ``settings.toml`` that sets ``[limits]`` (served pages call this).

    The limits bound what one load may cost on the server; a viewer's upload must not lift
    them. Everything else in an uploaded settings file applies as usual.

    Raises
    ------
    DataError
        Naming the file and the table.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "settings.toml").write_text("[limits]\\nmax_columns = 10000000\\n")
    >>> refuse_uploaded_limits(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effortlens.loading.report.DataError: settings.toml: [limits] cannot be set by an upload ...
    """
    import tomllib

    for path in Path(folder).iterdir():
        if path.name.lower() != "settings.toml":
            continue
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # the settings reader gives the message
        if "limits" in data:
            raise DataError(
                f"{path.name}: [limits] cannot be set by an upload on a served EffortLens (they "
                "bound what one load may cost on the server); remove the [limits] table, or ask "
                "whoever runs EffortLens to change them"
            )


def sweep(root: str | Path | None = None, *, max_age: float | None = None) -> list[Path]:
    """Delete upload folders under ``root`` older than ``max_age`` seconds; return them.

    Folders of sessions still open in this process are kept whatever their age.

    Examples
    --------
    >>> import tempfile, os
    >>> root = Path(tempfile.mkdtemp())
    >>> old = root / "session-old"
    >>> old.mkdir()
    >>> os.utime(old, (0, 0))
    >>> [p.name for p in sweep(root, max_age=3600)]
    ['session-old']
    """
    root = uploads_root() if root is None else Path(root)
    max_age = max_age_seconds() if max_age is None else max_age
    now = time.time()
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PREFIXES) or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.resolve() in _OPEN:
            continue
        try:
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        if age > max_age:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


#: Session folders open in this process (never swept).
_OPEN: set[Path] = set()


def _remove(folder: Path) -> None:
    _OPEN.discard(folder)
    shutil.rmtree(folder, ignore_errors=True)


class UploadSession:
    """One page's uploads: a private folder, emptied at each upload, deleted at the end.

    :meth:`save` writes an upload to ``<session>/files-N/`` (the previous one is deleted) and
    returns it; :attr:`cache_dir` (``<session>/cache``) is where the build made from it goes,
    so it is deleted with it. :meth:`close`, the object's finalizer and the end of the
    process delete the whole folder.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        """Open a session under ``root`` (default: the uploads root); no folder yet."""
        self.root = uploads_root() if root is None else Path(root)
        self._folder: Path | None = None
        self._count = 0
        self._finalizer: weakref.finalize | None = None

    @property
    def folder(self) -> Path:
        """The session's folder (made on first use, private to the user running the kernel)."""
        if self._folder is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="session-", dir=self.root)).resolve()
            _OPEN.add(self._folder)
            self._finalizer = weakref.finalize(self, _remove, self._folder)
        return self._folder

    @property
    def cache_dir(self) -> Path:
        """Where builds of this session's uploads go (deleted with the session)."""
        return self.folder / "cache"

    def save(self, uploads: Iterable[Mapping], *, limit: int | None = None) -> Path:
        """Check ``uploads`` (:func:`check_uploads`), write them to a fresh folder, return it."""
        files = check_uploads(uploads, limit=limit)
        for old in self.folder.glob("files-*"):
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        self._count += 1
        target = self.folder / f"files-{self._count}"
        target.mkdir()
        for name, content in files:
            try:
                path = inside(target, name)
            except UnsafePath as err:  # cannot happen after check_uploads; kept as a guard
                raise DataError(f"{name!r} cannot be uploaded: {err}") from None
            path.write_bytes(content)
        os.utime(self.folder)
        return target

    def close(self) -> None:
        """Delete the session's folder now."""
        if self._finalizer is not None:
            self._finalizer()
        self._folder = None
