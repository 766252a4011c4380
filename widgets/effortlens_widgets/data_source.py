"""Where a workbook finds its data, and the widget that loads it.

Every workbook asks :func:`default_data_dir` for its folder, so ``make run``, ``make lab``
and a notebook opened by hand all agree: ``$EFFORTLENS_DATA`` when it is set, else the
bundled sample in ``sample_data/generated/default`` (generated on first use).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import ipywidgets as widgets
import polars as pl
from traitlets import Any, Enum, Tuple, Unicode, observe

from effortlens.adapters.mapping import MappingError
from effortlens.loading import DataError
from effortlens.loading.paths import (
    data_roots,
    folders_under,
    refuse_links_out,
    served,
    under_roots,
)
from effortlens.settings import SettingsError, folder_settings_file, settings_for_folder
from effortlens.uploads import UploadSession, refuse_uploaded_limits, sweep
from effortlens_widgets._html import CSS, error_box, escape

#: Failures whose message is written for the user as it is.
READABLE_ERRORS = (DataError, SettingsError, MappingError)

#: Environment variable naming the data folder the workbooks open.
DATA_ENV = "EFFORTLENS_DATA"
#: The bundled sample, relative to the repository root.
SAMPLE_DIR = Path("sample_data", "generated", "default")


def repo_root() -> Path:
    """The repository this package is installed from (editable install), else the cwd."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def default_data_dir(*, generate: bool = True) -> Path:
    """The data folder workbooks open.

    Parameters
    ----------
    generate
        Generate the default sample when it is the folder in use and it is missing. A folder
        named by ``$EFFORTLENS_DATA`` is never written to.

    Returns
    -------
    Path
        ``$EFFORTLENS_DATA`` if set, else ``<repo>/sample_data/generated/default``.

    Examples
    --------
    >>> import os
    >>> os.environ["EFFORTLENS_DATA"] = "/data/crm-export"
    >>> str(default_data_dir())
    '/data/crm-export'
    >>> del os.environ["EFFORTLENS_DATA"]
    """
    named = os.environ.get(DATA_ENV, "").strip()
    if named:
        return Path(named).expanduser().resolve()
    folder = repo_root() / SAMPLE_DIR
    if generate:
        from effortlens.sample import ensure_sample

        ensure_sample(folder)
    return folder


def settings_for(folder: str | Path, settings_path: str | Path | None = None) -> Path | None:
    """The settings file for a data folder: the one given, else the folder's ``settings.toml``.

    ``None`` means the defaults. The rule is :func:`effortlens.settings.folder_settings_file`,
    the one ``effortlens load DIR`` follows too.

    Examples
    --------
    >>> settings_for("exports/acme", "my_settings.toml")
    PosixPath('my_settings.toml')
    """
    return folder_settings_file(folder, settings_path)


def load_data(
    folder: str | Path | None = None,
    *,
    settings_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
):
    """Load a data folder the way every workbook does.

    Parameters
    ----------
    folder
        Canonical tables, Salesforce or HubSpot exports, or CSVs with a ``mapping.toml``
        (see :func:`effortlens.adapters.load_any`); ``None`` means :func:`default_data_dir`.
    settings_path
        Settings TOML; default the folder's own ``settings.toml``, else the defaults.
    cache_dir
        Where the build goes; default the cache (``$EFFORTLENS_CACHE``). Uploads pass their
        session's, so that the build is deleted with them.

    Returns
    -------
    effortlens.loading.LoadedData
        Read from the folder's current build (:func:`effortlens.facts.open_build`: built,
        or rebuilt when stale, on first use); it carries the facts as ``enriched`` (events
        scanned lazily) and why they were (re)built as ``rebuilt`` ("" when current).

    Raises
    ------
    DataError, SettingsError, MappingError
        With a message written for the user.

    Examples
    --------
    >>> data = load_data()  # doctest: +SKIP
    >>> data.report.to_frame().columns  # doctest: +SKIP
    ['table', 'file', 'read', 'loaded', 'quarantined', 'missing']
    """
    folder = Path(folder).expanduser() if folder else default_data_dir()
    settings = settings_for_folder(folder, settings_path)
    from effortlens.facts import open_build

    said: list[str] = []
    built = open_build(folder, settings=settings, say=said.append, cache_dir=cache_dir)
    return dataclasses.replace(built.data, rebuilt="; ".join(said) or built.rebuilt)


def save_uploads(uploads, *, session=None) -> Path:
    """Write files uploaded in the page to a fresh folder of an upload session and return it.

    Parameters
    ----------
    uploads
        ``FileUpload.value``: a sequence of ``{"name": ..., "content": bytes-like}``.
    session
        An :class:`effortlens.uploads.UploadSession`; default one per process (deleted when
        the kernel ends).

    Raises
    ------
    DataError
        When nothing arrived, the upload is over the size limit
        (``EFFORTLENS_UPLOAD_MAX_MB``) or holds a file type that is not read.
    """
    global _PROCESS_UPLOADS
    if session is None:
        if _PROCESS_UPLOADS is None:
            _PROCESS_UPLOADS = UploadSession()
        session = _PROCESS_UPLOADS
    return session.save(uploads)


#: The upload session of :func:`save_uploads` without one (made on first use).
_PROCESS_UPLOADS: UploadSession | None = None
#: Whether this process swept old upload folders yet (once, when the first loader is built).
_SWEPT = False


def _sweep_old_uploads() -> None:
    global _SWEPT
    if not _SWEPT:
        _SWEPT = True
        try:
            sweep()
        except OSError:
            pass  # a cache that cannot be listed holds no uploads to remove


class DataSourceLoader(widgets.VBox):
    """Load a data folder with a progress indicator; failures show as a readable message.

    ``value`` holds the :class:`effortlens.loading.LoadedData` of the last successful load
    (``None`` before it and after a failure). Link it to the views that show the data. Its
    state is public: where the data comes from (``source``, ``path``, ``uploads``,
    ``settings_path``) and how the last load stands (``status``, ``message``, ``error``); the
    children only draw it.

    Examples
    --------
    >>> source = DataSourceLoader(path="sample_data/generated/default")
    >>> source.load()  # doctest: +SKIP
    >>> source.status, source.value.report.to_frame().columns[:3]  # doctest: +SKIP
    ('loaded', ['table', 'file', 'read'])
    >>> source.message  # doctest: +SKIP
    'Loaded from sample_data/generated/default'
    """

    value = Any(None, allow_none=True, help="LoadedData of the last successful load, or None.")
    source = Enum(
        ("default", "folder", "upload"),
        "default",
        help="Where the data comes from: the default folder ($EFFORTLENS_DATA or the bundled "
        "sample), a folder typed in, or files uploaded in the page.",
    )
    path = Unicode(
        "", help="Data folder to load; '' means default_data_dir() ($EFFORTLENS_DATA or sample)."
    )
    settings_path = Unicode(
        "", help="Settings TOML to load with; '' means the folder's settings.toml, else defaults."
    )
    status = Enum(
        ("idle", "loading", "loaded", "error"), "idle", help="Where the last load stands."
    )
    error = Unicode("", help="Readable message of the last failure; '' when it succeeded.")
    uploads = Tuple(
        help="The files chosen in the upload box (``FileUpload.value``: dicts with ``name`` and "
        "``content``), loaded when ``source`` is 'upload'."
    )
    message = Unicode(
        "",
        read_only=True,
        help="What the loader says beside its button, in words: the step of a load in "
        "progress, 'Loaded from …', or 'The data could not be loaded.' (``error`` says why).",
    )

    def __init__(self, **kwargs) -> None:
        """Build the source switch, folder field, upload and Load button (nothing is loaded)."""
        super().__init__(**kwargs)
        _sweep_old_uploads()
        self._uploads = UploadSession()
        #: Served to viewers (``effortlens serve`` with a login, the hub): the folder box is a
        #: list of the folders under the data roots, never free text.
        self.served = served()
        if self.served:
            choices = folders_under(data_roots())
            self._folder = widgets.Dropdown(
                options=[(label, str(path)) for label, path in choices],
                value=None,
                description="Data folder",
                layout=widgets.Layout(width="min(52em, 100%)"),
            )
            widgets.dlink((self._folder, "value"), (self, "path"), transform=lambda v: v or "")
        else:
            self._folder = widgets.Text(
                value=self.path,
                placeholder=f"default: {default_data_dir(generate=False)}",
                description="Data folder",
                continuous_update=False,
                layout=widgets.Layout(width="min(52em, 100%)"),
            )
            widgets.link((self._folder, "value"), (self, "path"))
        self._load_button = widgets.Button(
            description="Load", button_style="primary", icon="folder-open", tooltip="Load"
        )
        self._load_button.on_click(lambda _button: self.load())
        self._source = widgets.ToggleButtons(
            options=[
                ("Bundled sample" if not os.environ.get(DATA_ENV) else "Default folder", "default"),
                ("A folder", "folder"),
                ("Upload files", "upload"),
            ],
            value=self.source,
            tooltips=[
                "The data make run opened",
                "Choose one of the data folders this server offers"
                if self.served
                else "Type the path of a folder of exports",
                "Choose CSV or Parquet files (and a mapping.toml / settings.toml) to upload",
            ],
        )
        widgets.link((self._source, "value"), (self, "source"))
        self._upload = widgets.FileUpload(  # size limit: effortlens.uploads
            accept=".csv,.tsv,.txt,.parquet,.toml",
            multiple=True,
            description="Choose files",
        )
        widgets.link((self._upload, "value"), (self, "uploads"))
        self._progress = widgets.IntProgress(
            value=0, min=0, max=2, bar_style="info", layout=widgets.Layout(width="12em")
        )
        self._message = widgets.HTML()
        self.add_class("el-view")
        self._inputs = widgets.HBox([self._folder, self._load_button])
        self.children = [
            widgets.HTML(CSS),
            self._source,
            self._inputs,
            widgets.HBox([self._progress, self._message]),
        ]
        self._on_source()
        self._on_status()

    @property
    def upload_session(self) -> UploadSession:
        """The upload session holding this loader's uploaded files and their build.

        Deleted when the kernel ends (or by its ``close()``); a page's uploads never outlive it.
        """
        return self._uploads

    @observe("source")
    def _on_source(self, change=None) -> None:
        if not hasattr(self, "_inputs"):  # set from the constructor: drawn once built
            return
        picked = {
            "default": [self._load_button],
            "folder": [self._folder, self._load_button],
            "upload": [self._upload, self._load_button],
        }
        self._inputs.children = picked[self.source]

    def load(self) -> None:
        """Load ``path`` with ``settings_path``; set ``value`` or ``error``, never raise."""
        self.error = ""
        self.status = "loading"
        self._say("Finding the data (the sample is generated on first use)…", step=0)
        try:
            folder = self._folder_to_load()
            self._say(f"Loading {folder} …", step=1)
            data = load_data(
                folder,
                settings_path=self.settings_path or None,
                cache_dir=self._uploads.cache_dir if self.source == "upload" else None,
            )
        except (Exception, pl.exceptions.PanicException) as err:  # never a traceback
            from effortlens_widgets.app import load_error_text

            # the user's data problem in words; a bug named by file, its detail in the log
            self._fail(load_error_text(err))
        else:
            self.value = data
            self._loaded_from = (
                f"{len(self.uploads)} uploaded files" if self.source == "upload" else str(folder)
            )
            self.status = "loaded"

    def _folder_to_load(self) -> Path:
        if self.source == "upload":
            folder = save_uploads(self.uploads, session=self._uploads)
            if self.served:  # a viewer's settings.toml may not lift the server's load limits
                refuse_uploaded_limits(folder)
            return folder
        if self.source == "folder" and self.served:
            # Only folders under the data roots; the same answer whether or not a folder
            # outside them exists.
            chosen = under_roots(self.path) if self.path else None
            if chosen is None:
                raise DataError("choose one of the data folders offered, then press Load")
            refuse_links_out(chosen)  # files linked in from outside the roots are not read
            return chosen
        if self.source == "folder" and self.path:
            return Path(self.path).expanduser()
        if self.source == "folder":
            raise DataError("type the path of a folder of exports, then press Load")
        return Path(self.path).expanduser() if self.path else default_data_dir()

    def _fail(self, message: str) -> None:
        self.value = None
        self.error = message
        self.status = "error"

    def _say(self, text: str, *, step: int) -> None:
        self._progress.value = step
        self._show(text)

    def _show(self, text: str) -> None:
        self.set_trait("message", text)
        if self.status == "error":
            self._message.value = error_box(text, self.error)
        else:
            self._message.value = f'<span class="el-muted">{escape(text)}</span>' if text else ""

    @observe("status")
    def _on_status(self, change=None) -> None:
        busy = self.status == "loading"
        self._load_button.disabled = busy
        self._progress.layout.display = None if busy else "none"
        if self.status == "error":
            self._show("The data could not be loaded.")
        elif self.status == "loaded":
            self._show(f"Loaded from {self._loaded_from}")
        elif self.status == "idle":
            self._show("")
