"""What an endpoint is and was: its name, port and the history of its traffic splits (who set each and when), kept
as one JSON file per endpoint in `<home>/endpoints/records/` (written whole, atomically)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import EndpointError, EndpointNotFoundError
from ..files import atomic_write

NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
MAX_DEPLOYMENTS = 8  # behind one endpoint
MAX_HISTORY = 200  # splits kept per endpoint (the oldest go first)


def check_name(name: str) -> str:
    """Raises EndpointError unless `name` can name an endpoint."""
    if not NAME.match(name):
        raise EndpointError(f"{name!r} cannot name an endpoint: 1-40 lowercase letters, digits and dashes, starting "
                            "with a letter")
    return name


def parse_weights(pairs: list[str]) -> dict[str, int]:
    """`["a=90", "b=10"]` as {"a": 90, "b": 10}: whole numbers from 0 to 100 summing to 100, each deployment once.

    Raises:
        EndpointError: naming what is wrong.
    """
    weights: dict[str, int] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name or not value.strip().isdigit():
            raise EndpointError(f"{pair!r} is not DEPLOYMENT=PERCENT (a whole number from 0 to 100)")
        if name in weights:
            raise EndpointError(f"{name!r} is given twice")
        weights[name] = int(value)
    return checked_split(weights)


def checked_split(weights: Mapping[str, int]) -> dict[str, int]:
    """`weights` when they can be a split: 1 to MAX_DEPLOYMENTS deployments, whole percentages summing to 100.

    Raises:
        EndpointError: naming what is wrong.
    """
    if not weights:
        raise EndpointError("a split names at least one deployment")
    if len(weights) > MAX_DEPLOYMENTS:
        raise EndpointError(f"at most {MAX_DEPLOYMENTS} deployments sit behind an endpoint, not {len(weights)}")
    bad = [f"{name}={weight}" for name, weight in weights.items() if not 0 <= weight <= 100]
    if bad:
        raise EndpointError(f"a share is a whole percentage from 0 to 100: {', '.join(bad)}")
    total = sum(weights.values())
    if total != 100:
        raise EndpointError(f"the shares sum to {total}, not 100 ({', '.join(f'{n}={w}' for n, w in weights.items())})")
    return dict(weights)


@dataclass(frozen=True)
class Split:
    """One traffic split: each deployment's share of requests in percent (0 allowed: behind, carrying none), who set
    it and when (ISO 8601, UTC); and the shadow: a deployment sent a copy of `mirror` percent of the requests, whose
    answers no client gets (None: no shadow)."""

    weights: tuple[tuple[str, int], ...]
    by: str
    at: str
    mirror: tuple[str, int] | None = None

    def share(self, deployment: str) -> int:
        return dict(self.weights).get(deployment, 0)

    @property
    def deployments(self) -> tuple[str, ...]:
        """Every deployment behind it: carrying traffic or not, and its shadow."""
        names = tuple(name for name, _ in self.weights)
        return names + ((self.mirror[0],) if self.mirror and self.mirror[0] not in names else ())

    def describe(self) -> str:
        """ "a=90 b=10", and " (shadow c 100%)" """
        said = " ".join(f"{name}={weight}" for name, weight in self.weights)
        return said + (f" (shadow {self.mirror[0]} {self.mirror[1]}%)" if self.mirror else "")


@dataclass(frozen=True)
class EndpointRecord:
    """An endpoint: its name, the 127.0.0.1 port it answers on, and its splits, the current one last."""

    name: str
    port: int
    history: tuple[Split, ...]
    created_at: str

    @property
    def split(self) -> Split:
        return self.history[-1]

    @property
    def deployments(self) -> tuple[str, ...]:
        """Every deployment behind it, carrying traffic or not, and its shadow."""
        return self.split.deployments

    def with_split(self, split: Split) -> EndpointRecord:
        return EndpointRecord(self.name, self.port, (*self.history, split)[-MAX_HISTORY:], self.created_at)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "port": self.port, "created_at": self.created_at,
                "history": [{"weights": dict(s.weights), "by": s.by, "at": s.at,
                             **({"mirror": list(s.mirror)} if s.mirror else {})} for s in self.history]}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> EndpointRecord:
        history = data["history"]
        assert isinstance(history, list)
        return cls(str(data["name"]), int(str(data["port"])), tuple(
            Split(tuple((str(n), int(w)) for n, w in s["weights"].items()), str(s["by"]), str(s["at"]),
                  (str(s["mirror"][0]), int(s["mirror"][1])) if s.get("mirror") else None)
            for s in history), str(data["created_at"]))


class EndpointStore:
    """The endpoints of one home: a JSON file each."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "records"

    def _path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def list(self) -> list[EndpointRecord]:
        """Every endpoint, by name. Reads only."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(EndpointRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError, AssertionError, AttributeError):
                continue  # a damaged file: not an endpoint (its name stays taken until removed)
        return found

    def get(self, name: str) -> EndpointRecord:
        """Raises EndpointNotFoundError."""
        path = self._path(name)
        try:
            return EndpointRecord.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            known = ", ".join(r.name for r in self.list()) or "none yet"
            raise EndpointNotFoundError(f"no endpoint {name!r} (endpoints: {known})") from None
        except (OSError, ValueError, KeyError, TypeError, AssertionError, AttributeError) as e:
            raise EndpointError(f"the record of endpoint {name!r} ({path}) cannot be read: {e}") from e

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def save(self, record: EndpointRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_write(self._path(record.name)) as handle:
            handle.write(json.dumps(record.to_json(), indent=1).encode())

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
