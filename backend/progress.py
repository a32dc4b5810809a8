"""Progress of long work (training, image builds, deployments) as typed events, declared once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class ProgressKind(StrEnum):
    """What a progress event is about."""

    STEP = "step"  # a step of the work, for people ("building environment image ...")
    BUILD_LOG = "build"  # a line of `docker build` output
    SERVER_LOG = "log"  # a line the scoring server wrote while starting
    STATE = "state"  # the deployment's state changed


@dataclass(frozen=True)
class ProgressEvent:
    kind: ProgressKind
    message: str
    fraction: float | None = None  # how much of the whole work is done (0 to 1), where the work knows

    def __str__(self) -> str:
        return self.message if self.kind is ProgressKind.STEP else f"{self.kind}: {self.message}"


Progress = Callable[[ProgressEvent], None]


def quiet(_: ProgressEvent) -> None:
    """A Progress that ignores every event."""


def step(progress: Progress, message: str, fraction: float | None = None) -> None:
    progress(ProgressEvent(ProgressKind.STEP, message, fraction))
