"""A first run's progress events carry how much of it is done, for the dashboard's progress bar."""

import itertools

from backend.config import Settings
from backend.context import open_modeldeck
from backend.progress import ProgressEvent
from backend.training import ensure_sample_models


def test_a_first_runs_steps_say_how_far_it_is_from_0_to_1_and_never_go_back(tmp_path):
    deck = open_modeldeck(Settings(home=tmp_path / "home", runtime="local", auto_train=False))
    events: list[ProgressEvent] = []
    registered = ensure_sample_models(deck.registry, progress=events.append)
    assert [m.id for m in registered] == ["sklearn_mnist:1", "sklearn_mnist:2"]
    fractions = [e.fraction for e in events]
    assert all(f is not None for f in fractions), [str(e) for e in events]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert "training LogisticRegression" in events[1].message and 0.1 < fractions[1] < 0.4  # after loading
    # each stage moves the bar by its typical share of the run (benchmarks/bench_first_run_stages.py): both fits move
    # it, and no stage holds it still for most of the run and then jumps
    fits = [k for k, e in enumerate(events) if e.message.startswith("sklearn_mnist: trained in")]
    steps = [after - before for before, after in itertools.pairwise(fractions)]
    assert len(fits) == 2 and all(steps[k - 1] > 0.1 for k in fits) and max(steps) < 0.5
    assert events[-1].message == "registered sklearn_mnist:1 and sklearn_mnist:2"
