"""Path safety: a path that comes from a file or a viewer stays inside the folder it names.

Every path EffortLens takes from a file (a mapping's ``file = ...``) or from a viewer (the
folder box of Start here, an uploaded file's name) goes through this module:

- :func:`inside` joins a relative path to a folder and refuses absolute paths, ``..``, drive
  letters and anything that resolves (through symlinks) outside the folder;
- :func:`data_roots` reads the folders a served EffortLens may open (``EFFORTLENS_DATA_ROOTS``);
- :func:`under_roots` says whether a folder lies inside one of them (symlinks resolved);
- :func:`served` says whether this process serves viewers (``EFFORTLENS_SERVED``) rather
  than one person on their own machine.

Refusals are :class:`UnsafePath` errors (a :class:`~effortlens.loading.DataError`) whose message
quotes only the path as it was written, never what the file holds, and reads the same whether
or not the target exists.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> inside(folder, "exports/calls.csv") == folder.resolve() / "exports" / "calls.csv"
True
>>> inside(folder, "/etc/passwd")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
effortlens.loading.paths.UnsafePath: '/etc/passwd' is not a path inside the data folder ...
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from effortlens.loading.report import DataError

#: Environment variable: the folders a served EffortLens offers (a path list, ``os.pathsep``).
ROOTS_ENV = "EFFORTLENS_DATA_ROOTS"
#: Environment variable: set (to 1) by ``effortlens serve`` with a login, and by the hub.
SERVED_ENV = "EFFORTLENS_SERVED"
#: Environment variable naming the default data folder (also a root when served).
DATA_ENV = "EFFORTLENS_DATA"


class UnsafePath(DataError):
    """A path from a file or a viewer that would leave its folder; the message says why."""


def _refuse(written: str) -> UnsafePath:
    return UnsafePath(
        f"{written!r} is not a path inside the data folder (write a path relative to it, "
        'such as "calls.csv" or "exports/calls.csv")'
    )


def check_relative(relative: str) -> str:
    """Refuse a path that is absolute or climbs out, before any file is touched.

    Parameters
    ----------
    relative
        A path as written in a file or typed by a viewer.

    Returns
    -------
    str
        ``relative`` unchanged, when it is a plain relative path.

    Raises
    ------
    UnsafePath
        For an empty path, an absolute path (``/x``, ``\\\\server\\x``, ``C:x``, ``~/x``), any
        ``..`` part, or a NUL character.

    Examples
    --------
    >>> check_relative("exports/calls.csv")
    'exports/calls.csv'
    >>> check_relative("../secret.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effortlens.loading.paths.UnsafePath: '../secret.csv' is not a path inside the data folder ...
    """
    text = str(relative)
    if not text.strip() or "\x00" in text or text.startswith("~"):
        raise _refuse(text)
    for pure in (PurePosixPath(text), PureWindowsPath(text)):
        if pure.is_absolute() or pure.anchor or pure.drive or ".." in pure.parts:
            raise _refuse(text)
    return text


def inside(folder: str | Path, relative: str | Path) -> Path:
    """The file ``relative`` names inside ``folder``, refused if it would lead anywhere else.

    Parameters
    ----------
    folder
        The data folder.
    relative
        A path relative to it, from a file (a mapping's ``file =``) or a viewer.

    Returns
    -------
    Path
        The resolved path (symlinks followed), which lies inside the resolved ``folder``.
        It need not exist.

    Raises
    ------
    UnsafePath
        When ``relative`` is absolute, holds ``..``, or resolves outside ``folder`` (a symlink
        out). The message is the same whether or not the target exists.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "out").symlink_to("/etc")
    >>> inside(folder, "out/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    effortlens.loading.paths.UnsafePath: 'out/passwd' is not a path inside the data folder ...
    """
    written = str(relative)
    check_relative(written)
    base = Path(folder).expanduser().resolve()
    target = (base / written).resolve()
    if not contains(base, target):
        raise _refuse(written)
    return target


def contains(folder: str | Path, path: str | Path) -> bool:
    """Whether resolved ``path`` is ``folder`` or lies under it (both resolved first).

    Examples
    --------
    >>> contains("/srv/data", "/srv/data/acme")
    True
    >>> contains("/srv/data", "/srv/data-other")
    False
    """
    base = Path(folder).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    return target == base or base in target.parents


def links_out(folder: str | Path) -> list[str]:
    """Names of the entries of ``folder`` that are symlinks resolving outside it.

    Loaders read the files at the top of a data folder; a served EffortLens refuses a folder
    holding such a link rather than follow it (see :func:`refuse_links_out`).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "reps.csv").symlink_to("/etc/hostname")
    >>> links_out(folder)
    ['reps.csv']
    """
    base = Path(folder).expanduser().resolve()
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []  # the loader says why the folder cannot be read
    found = []
    for entry in entries:
        try:
            if entry.is_symlink() and not contains(base, entry.resolve()):
                found.append(entry.name)
        except (OSError, RuntimeError):  # a loop of links
            found.append(entry.name)
    return found


def refuse_links_out(folder: str | Path) -> None:
    """Raise :class:`UnsafePath` when ``folder`` holds a symlink leading out of it.

    Examples
    --------
    >>> import tempfile
    >>> refuse_links_out(tempfile.mkdtemp())  # nothing to refuse
    """
    names = links_out(folder)
    if names:
        raise UnsafePath(
            f"{', '.join(names)}: a link to a file outside the data folder, which a served "
            "EffortLens does not follow; copy the file into the folder instead"
        )


def served() -> bool:
    """Whether this process serves viewers (``EFFORTLENS_SERVED`` or data roots are set).

    ``make run`` and ``make lab`` (one person on their own machine) are not served;
    ``effortlens serve`` with a login and the JupyterHub deployment are.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("EFFORTLENS_SERVED", None) and None
    >>> os.environ.pop("EFFORTLENS_DATA_ROOTS", None) and None
    >>> served()
    False
    """
    flag = os.environ.get(SERVED_ENV, "").strip().lower()
    return flag not in ("", "0", "false", "no") or bool(os.environ.get(ROOTS_ENV, "").strip())


def data_roots() -> list[Path]:
    """The folders a served EffortLens may open: ``EFFORTLENS_DATA_ROOTS`` (a path list).

    Without it, the default data folder (``EFFORTLENS_DATA``) is the only root. Roots are
    resolved; missing ones are left out.

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["EFFORTLENS_DATA_ROOTS"] = tempfile.gettempdir() + os.pathsep + "/nowhere"
    >>> [str(r) == str(Path(tempfile.gettempdir()).resolve()) for r in data_roots()]
    [True]
    >>> del os.environ["EFFORTLENS_DATA_ROOTS"]
    """
    text = os.environ.get(ROOTS_ENV, "").strip() or os.environ.get(DATA_ENV, "").strip()
    roots: list[Path] = []
    for part in text.split(os.pathsep):
        if not part.strip():
            continue
        root = Path(part.strip()).expanduser().resolve()
        if root.is_dir() and root not in roots:
            roots.append(root)
    return roots


def under_roots(path: str | Path, roots: list[Path] | None = None) -> Path | None:
    """``path`` resolved, when it lies inside one of ``roots`` (default :func:`data_roots`).

    Returns ``None`` otherwise, so that a caller can answer the same thing for a folder
    outside the roots whether or not it exists.

    Examples
    --------
    >>> under_roots("/etc", [Path("/srv/data")]) is None
    True
    """
    roots = data_roots() if roots is None else roots
    target = Path(path).expanduser().resolve()
    for root in roots:
        if contains(root, target):
            return target
    return None


def folders_under(roots: list[Path], *, depth: int = 3, limit: int = 500) -> list[tuple[str, Path]]:
    """The folders a served viewer may choose: each root and its subfolders.

    Hidden folders (``.name``) and symlinks that lead out of their root are left out.

    Parameters
    ----------
    roots
        Resolved root folders (:func:`data_roots`).
    depth
        How many levels below a root are listed.
    limit
        At most this many folders in all.

    Returns
    -------
    list of (label, path)
        ``label`` is the root's name and the path below it (``"exports/acme"``).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "acme").mkdir()
    >>> [label.split("/", 1)[-1] for label, _ in folders_under([root])][1:]
    ['acme']
    """
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()

    def walk(root: Path, folder: Path, label: str, level: int) -> None:
        if len(found) >= limit or folder in seen:
            return
        seen.add(folder)
        found.append((label, folder))
        if level >= depth:
            return
        try:
            children = sorted(folder.iterdir(), key=lambda p: p.name.lower())
        except OSError:
            return
        for child in children:
            if child.name.startswith("."):
                continue
            try:
                if not child.is_dir():
                    continue
                real = child.resolve()
            except OSError:
                continue
            if contains(root, real):
                walk(root, real, f"{label}/{child.name}", level + 1)

    for root in roots:
        walk(root, root, root.name or str(root), 0)
    return found
