"""Settings, read from the environment in one place.

Each setting is declared once with its variable, default and meaning.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_BASE_IMAGE = "python:3.11-slim"
OFFLINE_BASE_IMAGE = "modeldeck/base:bookworm-py311"
HOME_ID_FILE = "home-id"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"


def _default_home() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "modeldeck"


@dataclass(frozen=True)
class Settings:
    """ModelDeck's settings.

    Attributes:
        home: MODELDECK_HOME, where the registry, model files and local deployments live
            (default: $XDG_DATA_HOME/modeldeck, i.e. ~/.local/share/modeldeck).
        runtime: MODELDECK_RUNTIME, where new deployments go: a runtime kind (runtimes/kinds.py: docker,
            local) or auto, the first kind that answers (docker when an engine answers, else local), checked
            when the home's runtimes are opened. Existing deployments are found on every runtime.
        base_image: MODELDECK_BASE_IMAGE, the base of environment images (default python:3.11-slim,
            or the offline-built modeldeck/base image when that one is present).
        auto_train: MODELDECK_AUTO_TRAIN, train the sample model when the registry is empty (default 1).
    """

    home: Path
    runtime: str = "auto"
    base_image: str | None = None
    auto_train: bool = True

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.sqlite3"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def local_deployments_dir(self) -> Path:
        return self.home / "deployments"

    @property
    def datasets_dir(self) -> Path:
        """The user's own test sets (`modeldeck datasets add`)."""
        return self.home / "datasets"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Reads the settings from `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        runtime = env.get("MODELDECK_RUNTIME", "auto").strip().lower() or "auto"
        home = Path(env["MODELDECK_HOME"]).expanduser() if env.get("MODELDECK_HOME") else _default_home()
        auto_train = env.get("MODELDECK_AUTO_TRAIN", "1").strip().lower() not in ("0", "false", "no")
        return cls(home=home, runtime=runtime, base_image=env.get("MODELDECK_BASE_IMAGE") or None,
                   auto_train=auto_train)


@dataclass(frozen=True)
class Home:
    """A ModelDeck home: its folder and its id, which every deployment made from it carries."""

    path: Path
    id: str


def open_home(path: Path) -> Home:
    """The home at `path`, created (0700: only its owner reads the models, keys and results in it)
    with a new random id the first time.

    Raises:
        ConfigError: the folder cannot be created or its id file read.
    """
    path = Path(path)
    id_file = path / HOME_ID_FILE
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:  # a home made before it was private: models are secrets too
            path.chmod(0o700)
        if not id_file.exists():
            # Written whole, then linked in: a second process sees either no file or the full id.
            tmp = path / f".{HOME_ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
            tmp.write_text(secrets.token_hex(4) + "\n")
            try:
                os.link(tmp, id_file)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        home_id = id_file.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot use {path} as the ModelDeck home: {e}") from e
    if not home_id:
        raise ConfigError(f"{id_file} is empty: delete it and ModelDeck makes a new id")
    return Home(path, home_id)
