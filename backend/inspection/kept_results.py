"""The last results of each deployment and test set, kept under the home so a reload shows them again.

Results are keyed by the deployment's uid (not its name), so a new deployment that reuses a name
never shows the results of the one it replaced.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..data.testset import Categories
from ..files import atomic_write
from ..runtimes.base import Deployment
from ..traffic.loadtest import LoadTestResult
from .evaluation import Curve, Evaluation, RobustnessPoint, Samples, evaluate

LOADTEST_FILE = "loadtest.json"


class ResultStore:
    """Samples and evaluations as .npz files in `root/<deployment uid>/` (no pickles); the last load
    test as loadtest.json beside them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _folder(self, deployment: Deployment) -> Path:
        uid = deployment.record.uid or f"{deployment.runtime}-{deployment.name}-{deployment.created_at}"
        return self.root / "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)

    def _path(self, deployment: Deployment, dataset: str, kind: str) -> Path:
        return self._folder(deployment) / f"{dataset}.{kind}.npz"

    def _write(self, path: Path, **arrays: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    def save_loadtest(self, deployment: Deployment, result: LoadTestResult) -> None:
        """Keeps `result` as the deployment's last load test (replacing the one before)."""
        path = self._folder(deployment) / LOADTEST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            handle.write(json.dumps(result.to_json(), indent=1).encode())

    def load_loadtest(self, deployment: Deployment) -> LoadTestResult | None:
        """The deployment's last load test, or None (never run, or unreadable). Reads only."""
        try:
            return LoadTestResult.from_json(json.loads((self._folder(deployment) / LOADTEST_FILE).read_bytes()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError):
            return None  # never saved, or unreadable: nothing to show

    def save_samples(self, deployment: Deployment, dataset: str, samples: Samples) -> None:
        self._write(self._path(deployment, dataset, "samples"), indices=samples.indices, images=samples.images,
                    labels=samples.labels, predictions=samples.predictions,
                    class_names=np.asarray(samples.class_names),
                    value_range=np.asarray(samples.value_range, dtype=np.float64), **_probabilities(samples.probabilities),
                    **({"image_shape": np.asarray(samples.image_shape)} if samples.image_shape is not None else
                       {"feature_names": np.asarray(samples.feature_names or (), dtype=str),
                        "categories": np.asarray(json.dumps(dict(samples.categories), ensure_ascii=False))}))

    def load_samples(self, deployment: Deployment, dataset: str) -> Samples | None:
        data = self._read(self._path(deployment, dataset, "samples"))
        if data is None:
            return None
        shape = data["image_shape"].tolist() if "image_shape" in data else None
        features = data.get("feature_names")
        return Samples(indices=data["indices"], images=data["images"], labels=data["labels"],
                       predictions=data["predictions"], image_shape=(int(shape[0]), int(shape[1])) if shape else None,
                       class_names=tuple(str(c) for c in data["class_names"]), probabilities=data.get("probabilities"),
                       value_range=_value_range(data.get("value_range")),
                       feature_names=tuple(str(f) for f in features) if features is not None else None,
                       categories=_categories(data.get("categories")))

    def save_evaluation(self, deployment: Deployment, dataset: str, y_true: np.ndarray,
                        evaluation: Evaluation) -> None:
        self._write(self._path(deployment, dataset, "evaluation"), y_true=y_true,
                    predictions=evaluation.predictions, labels=np.asarray(evaluation.labels),
                    **_probabilities(evaluation.probabilities))

    def load_evaluation(self, deployment: Deployment, dataset: str) -> Evaluation | None:
        data = self._read(self._path(deployment, dataset, "evaluation"))
        if data is None:
            return None
        return evaluate(data["y_true"], data["predictions"], tuple(str(c) for c in data["labels"]),
                        data.get("probabilities"))

    def save_curve(self, deployment: Deployment, dataset: str, kind: str, curve: Curve) -> None:
        self._write(self._path(deployment, dataset, f"robustness-{kind}"), planned=np.array(curve.planned),
                    strengths=np.array([p.strength for p in curve.points]),
                    accuracies=np.array([p.accuracy for p in curve.points]))

    def load_curve(self, deployment: Deployment, dataset: str, kind: str) -> Curve | None:
        data = self._read(self._path(deployment, dataset, f"robustness-{kind}"))
        if data is None:
            return None
        points = tuple(RobustnessPoint(float(s), float(a))
                       for s, a in zip(data["strengths"], data["accuracies"], strict=True))
        return Curve(points, int(data["planned"]) if "planned" in data else len(points))  # kept before: whole

    def revision(self, deployment: Deployment, dataset: str, kind: str) -> int:
        """A number that changes whenever the `kind` result is saved again (0 while there is none):
        a cache key for pictures drawn from it."""
        try:
            return self._path(deployment, dataset, kind).stat().st_mtime_ns
        except OSError:
            return 0

    def saved_at(self, deployment: Deployment, dataset: str, kind: str) -> str | None:
        """When the `kind` ("samples" or "evaluation") result was saved (ISO 8601, UTC), or None."""
        try:
            mtime = self._path(deployment, dataset, kind).stat().st_mtime
        except OSError:
            return None
        return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")

    def forget(self, deployment: Deployment) -> None:
        """Removes everything kept for `deployment`."""
        shutil.rmtree(self._folder(deployment), ignore_errors=True)


def _probabilities(probabilities: np.ndarray | None) -> dict[str, np.ndarray]:
    """Probabilities kept as float32 (half the disk, more than enough for display), when there are any."""
    return {} if probabilities is None else {"probabilities": np.asarray(probabilities, dtype=np.float32)}


def _value_range(saved: np.ndarray | None) -> tuple[float, float]:
    """The samples' value range as saved ([0, 1] for samples saved before ranges were kept)."""
    return (0.0, 1.0) if saved is None or saved.shape != (2,) else (float(saved[0]), float(saved[1]))


def _categories(stored: np.ndarray | None) -> Categories:
    """Kept samples' text columns ({} in samples kept before they were, or of images)."""
    if stored is None:
        return ()
    try:
        found = json.loads(str(stored))
        return tuple((str(column), tuple(str(c) for c in known)) for column, known in found.items())
    except (ValueError, AttributeError, TypeError):
        return ()
