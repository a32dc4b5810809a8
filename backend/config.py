"""Settings, read from the environment in one place.

Each setting is declared once with its variable, default and meaning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

RUNTIME_CHOICES = ("auto", "docker", "local")
DEFAULT_BASE_IMAGE = "python:3.11-slim"
OFFLINE_BASE_IMAGE = "modeldeck/base:bookworm-py311"
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
        runtime: MODELDECK_RUNTIME, one of auto|docker|local (auto: docker when an engine answers).
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
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Reads the settings from `environ` (default: os.environ).

        Raises:
            ConfigError: a variable has a value outside its choices.
        """
        env = os.environ if environ is None else environ
        runtime = env.get("MODELDECK_RUNTIME", "auto").strip().lower() or "auto"
        if runtime not in RUNTIME_CHOICES:
            raise ConfigError(
                f"MODELDECK_RUNTIME={runtime!r} is not one of {', '.join(RUNTIME_CHOICES)}")
        home = Path(env["MODELDECK_HOME"]).expanduser() if env.get("MODELDECK_HOME") else _default_home()
        auto_train = env.get("MODELDECK_AUTO_TRAIN", "1").strip().lower() not in ("0", "false", "no")
        return cls(home=home, runtime=runtime, base_image=env.get("MODELDECK_BASE_IMAGE") or None,
                   auto_train=auto_train)
