"""Where a workbook finds its data, and the widget that loads it.

Every workbook asks :func:`default_data_dir` for its folder, so ``make run``, ``make lab``
and a notebook opened by hand all agree: ``$EFFORTLENS_DATA`` when it is set, else the
bundled sample in ``sample_data/generated/default`` (generated on first use).
"""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets
from traitlets import Any, Enum, Unicode, observe

from effortlens.adapters import load_any
from effortlens.adapters.mapping import MappingError
from effortlens.load import DataError
from effortlens.settings import SettingsError, load_settings
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

    ``None`` means the defaults.

    Examples
    --------
    >>> settings_for("exports/acme", "my_settings.toml")
    PosixPath('my_settings.toml')
    """
    if settings_path:
        return Path(settings_path).expanduser()
    own = Path(folder) / "settings.toml"
    return own if own.is_file() else None


def load_data(folder: str | Path | None = None, *, settings_path: str | Path | None = None):
    """Load a data folder the way every workbook does.

    Parameters
    ----------
    folder
        Canonical tables, Salesforce or HubSpot exports, or CSVs with a ``mapping.toml``
        (see :func:`effortlens.adapters.load_any`); ``None`` means :func:`default_data_dir`.
    settings_path
        Settings TOML; default the folder's own ``settings.toml``, else the defaults.

    Returns
    -------
    effortlens.load.LoadedData

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
    settings = load_settings(settings_for(folder, settings_path))
    return load_any(folder, settings=settings)


class DataSourceLoader(widgets.VBox):
    """Load a data folder with a progress indicator; failures show as a readable message.

    ``value`` holds the :class:`effortlens.load.LoadedData` of the last successful load
    (``None`` before it and after a failure). Link it to the views that show the data.

    Examples
    --------
    >>> source = DataSourceLoader(path="sample_data/generated/default")
    >>> source.load()  # doctest: +SKIP
    >>> source.status, source.value.report.to_frame().columns[:3]  # doctest: +SKIP
    ('loaded', ['table', 'file', 'read'])
    """

    value = Any(None, allow_none=True, help="LoadedData of the last successful load, or None.")
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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
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
        self._progress = widgets.IntProgress(
            value=0, min=0, max=2, bar_style="info", layout=widgets.Layout(width="12em")
        )
        self._message = widgets.HTML()
        self.add_class("el-view")
        self.children = [
            widgets.HTML(CSS),
            widgets.HBox([self._folder, self._load_button]),
            widgets.HBox([self._progress, self._message]),
        ]
        self._on_status()

    def load(self) -> None:
        """Load ``path`` with ``settings_path``; set ``value`` or ``error``, never raise."""
        self.error = ""
        self.status = "loading"
        self._say("Finding the data (the sample is generated on first use)…", step=0)
        try:
            folder = Path(self.path).expanduser() if self.path else default_data_dir()
            self._say(f"Loading {folder} …", step=1)
            data = load_data(folder, settings_path=self.settings_path or None)
        except READABLE_ERRORS as err:
            self._fail(str(err))
        except Exception as err:  # a reader of the page must never see a traceback
            self._fail(f"{type(err).__name__}: {err}")
        else:
            self.value = data
            self._loaded_from = folder
            self.status = "loaded"

    def _fail(self, message: str) -> None:
        self.value = None
        self.error = message
        self.status = "error"

    def _say(self, text: str, *, step: int) -> None:
        self._progress.value = step
        self._message.value = f'<span class="el-muted">{escape(text)}</span>'

    @observe("status")
    def _on_status(self, change=None) -> None:
        busy = self.status == "loading"
        self._load_button.disabled = busy
        self._progress.layout.display = None if busy else "none"
        if self.status == "error":
            self._message.value = error_box("The data could not be loaded.", self.error)
        elif self.status == "loaded":
            self._message.value = (
                f'<span class="el-muted">Loaded from {escape(self._loaded_from)}</span>'
            )
        elif self.status == "idle":
            self._message.value = ""
