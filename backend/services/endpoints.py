"""Endpoints as the CLI and the dashboard ask for them: make one in front of a deployment, split its traffic among
deployments of the same model's kind (a graceful reload: no request fails), roll back to the split before, list,
show and delete them. The proxy (routing/nginx.py) is started again, on the same ports, when it was killed."""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from ..errors import EndpointError, ModelDeckError
from ..registry import Model
from ..routing.nginx import SHADOW_LOGS, Proxy, Target
from ..routing.records import EndpointRecord, EndpointStore, Split, check_name, checked_split, parse_weights
from ..routing.shadow import ShadowRecord, bound_logs, read_record
from ..runtimes.base import Deployment
from ..runtimes.probe import free_port

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as shown: its record, scoring URI, and whether its proxy serves it now (else why not)."""

    record: EndpointRecord
    scoring_uri: str
    serving: bool
    problem: str = ""


def _store(deck: ModelDeck) -> EndpointStore:
    return EndpointStore(deck.home.path / "endpoints")


def _proxy(deck: ModelDeck) -> Proxy:
    return Proxy(deck.home.path / "endpoints")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def scoring_uri(record: EndpointRecord) -> str:
    return f"http://127.0.0.1:{record.port}/score"


def _kind(model: Model | None) -> tuple[object, ...] | None:
    """What a client sees of a model: the inputs it takes and the classes it answers (None: not known)."""
    if model is None:
        return None
    s = model.signature
    return (s.n_features, s.image_shape, s.feature_names, s.class_labels, s.categories)


def _targets(deck: ModelDeck, weights: dict[str, int], *, checked: bool = True) -> dict[str, Target]:
    """The deployments of a split as the proxy reaches them. `checked` (a new split): each must be this home's,
    Healthy, and take the same inputs and answer the same classes as the others (refused, with why, otherwise);
    else (the splits already served) each is found wherever it runs, in any state.

    Raises:
        EndpointError, DeploymentNotFoundError, DeploymentNotHealthyError.
    """
    found: dict[str, Deployment] = {name: (deck.deployments.healthy if checked else deck.deployments.get)(name)
                                    for name in weights}
    if checked:
        kinds = {name: _kind(deck.deployments.model_of(d)) for name, d in found.items()}
        first = next(iter(found))
        for name, kind in kinds.items():
            if kind is None:
                raise EndpointError(f"deployment {name!r} serves a model no longer registered as it was: what it "
                                    "takes and answers is not known, so it cannot sit behind an endpoint")
            if kind != kinds[first]:
                a, b = (deck.deployments.model_of(found[n]) for n in (first, name))
                raise EndpointError(f"{name!r} ({b.id if b else '?'}) does not take the same inputs and answer the "
                                    f"same classes as {first!r} ({a.id if a else '?'}): clients of one endpoint "
                                    "would get answers of two kinds")
    targets = {}
    for name, d in found.items():
        if not d.scoring_uri:
            raise EndpointError(f"deployment {name!r} behind an endpoint has no address now ({d.state})")
        targets[name] = Target(name, d.scoring_uri.split("//", 1)[1].split("/", 1)[0], deck.deployments.key_for(d))
    return targets


def _apply(deck: ModelDeck, changed: EndpointRecord | None = None, removed: str | None = None) -> None:
    """Serves every endpoint of the home, with `changed` in place of its record (or `removed` left out), then keeps
    the records so: the proxy first, so a refused change changes nothing. Call with the proxy's lock held."""
    store = _store(deck)
    records = {r.name: r for r in store.list()}
    if changed is not None:
        records[changed.name] = changed
    if removed is not None:
        records.pop(removed, None)
    targets: dict[str, Target] = {}
    for record in records.values():
        serving = {n: w for n, w in record.split.weights if w > 0}
        if record.split.mirror:
            serving[record.split.mirror[0]] = 0
        targets.update(_targets(deck, serving, checked=False))
    _proxy(deck).apply(list(records.values()), targets)
    if changed is not None:
        store.save(changed)
    if removed is not None:
        store.remove(removed)


def create_endpoint(deck: ModelDeck, name: str, deployment: str, *, port: int | None = None) -> EndpointView:
    """A new endpoint `name` sending every request to `deployment` (Healthy, this home's), on `port` (a free one by
    default) of 127.0.0.1.

    Raises:
        EndpointError: the name is taken or not a name, the port is taken. DeploymentNotFoundError,
        DeploymentNotHealthyError, RuntimeUnavailableError (no nginx).
    """
    check_name(name)
    store, proxy = _store(deck), _proxy(deck)
    with proxy.locked():
        _targets(deck, {deployment: 100})  # this home's, Healthy
        if store.exists(name):
            raise EndpointError(f"endpoint {name!r} exists already (`endpoints show {name}`)")
        taken = {r.port for r in store.list()}
        if port is not None and port in taken:
            raise EndpointError(f"port {port} is another endpoint's")
        if port is not None and not _bindable(port):
            raise EndpointError(f"port {port} of 127.0.0.1 is taken by another program: choose another (--port), "
                                "or let ModelDeck choose one")
        chosen = port or free_port()
        while chosen in taken:
            chosen = free_port()
        now = _now()
        record = EndpointRecord(name, chosen, (Split(((deployment, 100),), _who(), now),), now)
        _apply(deck, changed=record)
    return show_endpoint(deck, name)


def _bindable(port: int) -> bool:
    """Whether nothing listens on `port` of 127.0.0.1 (the proxy could take it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def parse_split(pairs: list[str]) -> dict[str, int]:
    """`["a=90", "b=10"]` as a split; raises EndpointError naming what is wrong."""
    return parse_weights(pairs)


def parse_mirror(pair: str) -> tuple[str, int]:
    """`"b=100"` as ("b", 100); raises EndpointError when it is not DEPLOYMENT=PERCENT (1 to 100)."""
    name, equals, value = pair.partition("=")
    if not equals or not name or not value.isdigit() or not 1 <= int(value) <= 100:
        raise EndpointError(f"{pair!r} is not DEPLOYMENT=PERCENT (the share of requests copied, 1 to 100)")
    return name, int(value)


def set_traffic(deck: ModelDeck, name: str, weights: dict[str, int]) -> EndpointView:
    """Splits the endpoint's requests among deployments in whole percentages summing to 100 (0: behind it, carrying
    none); the proxy reloads gracefully (no request fails). The split before is kept for `rollback`.

    Raises:
        EndpointError: a bad split or a deployment that cannot sit behind it (nothing changed then),
        EndpointNotFoundError, DeploymentNotFoundError, DeploymentNotHealthyError.
    """
    checked = checked_split(weights)
    if not any(checked.values()):
        raise EndpointError("a split sends its requests somewhere: give a deployment more than 0")
    store, proxy = _store(deck), _proxy(deck)
    with proxy.locked():
        record = store.get(name)
        mirror = record.split.mirror
        _targets(deck, {**checked, **({mirror[0]: 0} if mirror else {})})  # each could carry traffic, of one kind
        _apply(deck, changed=record.with_split(Split(tuple(checked.items()), _who(), _now(), mirror)))
    return show_endpoint(deck, name)


def set_mirror(deck: ModelDeck, name: str, deployment: str | None, share: int = 100) -> EndpointView:
    """Sends a copy of `share` percent of the endpoint's requests to `deployment` (the shadow: its answers are logged
    beside the live ones of the same requests, and no client gets them); None stops it. A graceful reload.

    Raises:
        EndpointError: a share not from 1 to 100, a deployment that cannot sit behind it. EndpointNotFoundError,
        DeploymentNotFoundError, DeploymentNotHealthyError.
    """
    if deployment is not None and not 1 <= share <= 100:
        raise EndpointError(f"a shadow takes a copy of 1 to 100 % of the requests, not {share}")
    store, proxy = _store(deck), _proxy(deck)
    with proxy.locked():
        record = store.get(name)
        weights = dict(record.split.weights)
        if deployment is not None:
            _targets(deck, {**weights, deployment: 0})  # Healthy, of the same kind as those it shadows
        mirror = (deployment, share) if deployment is not None else None
        _apply(deck, changed=record.with_split(Split(record.split.weights, _who(), _now(), mirror)))
        if (record.split.mirror or (None,))[0] != deployment:
            _forget_shadow(deck, name)  # another shadow's answers are not this one's
    return show_endpoint(deck, name)


def _forget_shadow(deck: ModelDeck, name: str, *, gone: bool = False) -> None:
    """Empties the endpoint's shadow record (removes it once the endpoint is `gone`)."""
    folder = _proxy(deck).folder
    for log in SHADOW_LOGS:
        path = folder / (name + log)
        path.with_name(path.name + ".1").unlink(missing_ok=True)
        if gone:
            path.unlink(missing_ok=True)
        elif path.exists():
            os.truncate(path, 0)  # nginx appends: it goes on writing from the start


@dataclass(frozen=True)
class ShadowView:
    """An endpoint's shadow now: the deployment and the share of requests copied to it (None: no shadow), and what
    it said against the live answers of the same requests."""

    deployment: str | None
    share: int
    record: ShadowRecord


@dataclass(frozen=True)
class ShadowInputs:
    """The latest disagreements' inputs as images of the model's shape (those whose body held one row of it)."""

    images: np.ndarray
    image_shape: tuple[int, int]
    value_range: tuple[float, float]
    live: tuple[str, ...]
    shadow: tuple[str, ...]


def shadow_inputs(deck: ModelDeck, name: str, view: ShadowView) -> ShadowInputs | None:
    """The inputs of `view`'s latest disagreements as images, when the endpoint's model takes images (None else, or
    when none was logged whole). Reads only."""
    record = _store(deck).get(name)
    first = next((n for n, w in record.split.weights if w > 0), None)
    model = deck.deployments.model_of(deck.deployments.get(first)) if first else None
    if model is None or model.signature.image_shape is None:
        return None
    shape = model.signature.image_shape
    low, high = model.signature.value_range or (0.0, 1.0)
    rows, live, shadow = [], [], []
    for d in view.record.latest:
        try:
            data = json.loads(d.body)["data"]
            row = np.asarray(data[0], dtype=np.float32)
        except (ValueError, KeyError, TypeError, IndexError):
            continue
        if row.size == shape[0] * shape[1]:
            rows.append(row)
            live.append(_answer_text(d.live))
            shadow.append(_answer_text(d.shadow))
    if not rows:
        return None
    return ShadowInputs(np.stack(rows), shape, (low, high), tuple(live), tuple(shadow))


def _answer_text(answer: str) -> str:
    """`[7]` as "7"; any other answer as it is, cut."""
    try:
        value = json.loads(answer)
    except ValueError:
        return answer[:12]
    if isinstance(value, list) and len(value) == 1:
        return str(value[0])[:12]
    return answer[:12]


def shadow_of(deck: ModelDeck, name: str) -> ShadowView:
    """The shadow's agreement with the live answers (the last requests copied; the record kept bounded first).

    Raises:
        EndpointNotFoundError.
    """
    record = _store(deck).get(name)
    proxy = _proxy(deck)
    bound_logs(proxy.folder, name, proxy.pid())
    mirror = record.split.mirror
    return ShadowView(mirror[0] if mirror else None, mirror[1] if mirror else 0, read_record(proxy.folder, name))


def rollback(deck: ModelDeck, name: str) -> EndpointView:
    """Returns the endpoint to the split before the current one (kept in its history as a new change).

    Raises:
        EndpointError: it has had one split only, or a deployment of that split cannot carry traffic any more.
        EndpointNotFoundError.
    """
    store, proxy = _store(deck), _proxy(deck)
    with proxy.locked():
        record = store.get(name)
        if len(record.history) < 2:
            raise EndpointError(f"endpoint {name!r} has had one split only ({record.split.describe()}): nothing "
                                "to go back to")
        before = record.history[-2]
        _apply(deck, changed=record.with_split(Split(before.weights, _who(), _now(), before.mirror)))
    return show_endpoint(deck, name)


def delete_endpoint(deck: ModelDeck, name: str) -> None:
    """Stops serving the endpoint and forgets it (its deployments stay).

    Raises:
        EndpointNotFoundError.
    """
    store, proxy = _store(deck), _proxy(deck)
    with proxy.locked():
        store.get(name)
        _apply(deck, removed=name)
        _forget_shadow(deck, name, gone=True)


def carrying(deck: ModelDeck, deployment: str) -> list[tuple[str, int]]:
    """(endpoint, share) of every endpoint `deployment` sits behind. Reads only."""
    return [(r.name, r.split.share(deployment)) for r in _store(deck).list() if deployment in r.deployments]


def release(deck: ModelDeck, deployment: str, *, force: bool = False) -> None:
    """Takes `deployment` from behind every endpoint before it is deleted: refused while it carries traffic, unless
    `force`, which first moves its share to the others behind that endpoint (in proportion; to the first when they
    carry none).

    Raises:
        EndpointError: it carries traffic (without `force`), or it is the only deployment behind an endpoint.
    """
    plans = []
    for endpoint, share in carrying(deck, deployment):  # every refusal first: nothing half-changed
        record = _store(deck).get(endpoint)
        live = deployment in dict(record.split.weights)
        others = {n: w for n, w in record.split.weights if n != deployment}
        if live and not others:
            raise EndpointError(f"{deployment!r} is the only deployment behind endpoint {endpoint!r}: put another "
                                f"there first (`endpoints traffic {endpoint} OTHER=100`) or delete the endpoint")
        if share and not force:
            raise EndpointError(f"{deployment!r} carries {share}% of the traffic of endpoint {endpoint!r}: move it "
                                f"first (`endpoints traffic {endpoint} ...` with {deployment}=0), or delete with "
                                "--force")
        plans.append((endpoint, record.split.mirror, live, others, share))
    for endpoint, mirror, live, others, share in plans:
        if mirror and mirror[0] == deployment:
            set_mirror(deck, endpoint, None)  # a shadow serves no client: it goes without asking
        if live:
            set_traffic(deck, endpoint, _moved(others, share))


def _moved(others: dict[str, int], share: int) -> dict[str, int]:
    """`others` with `share` more percent among them, in proportion to what they carry (all to the first when they
    carry nothing), still whole numbers summing to 100."""
    total = sum(others.values())
    if total == 0:
        first = next(iter(others))
        return {n: (share if n == first else 0) for n in others}
    scaled = {n: w * 100 / total for n, w in others.items()}
    result = {n: int(v) for n, v in scaled.items()}
    for n in sorted(scaled, key=lambda n: scaled[n] - result[n], reverse=True)[:100 - sum(result.values())]:
        result[n] += 1
    return result


def show_endpoint(deck: ModelDeck, name: str) -> EndpointView:
    """One endpoint; its proxy started again first when it is not running (a reboot, a kill).

    Raises:
        EndpointNotFoundError.
    """
    record = _store(deck).get(name)
    problem = ensure_proxy(deck)
    return EndpointView(record, scoring_uri(record), not problem, problem)


def list_endpoints(deck: ModelDeck) -> list[EndpointView]:
    """Every endpoint of the home, by name; the proxy started again first when it is not running."""
    records = _store(deck).list()
    problem = ensure_proxy(deck) if records else ""
    return [EndpointView(r, scoring_uri(r), not problem, problem) for r in records]


def ensure_proxy(deck: ModelDeck) -> str:
    """Starts the proxy when there are endpoints and it is not running; "" when it serves, else why it cannot."""
    proxy = _proxy(deck)
    if proxy.pid() is not None or not _store(deck).list():
        return ""
    with proxy.locked():
        if proxy.pid() is not None:
            return ""
        try:
            _apply(deck)
        except ModelDeckError as e:  # no nginx, a deployment gone: said, never a traceback on a listing
            return str(e)
    return ""

