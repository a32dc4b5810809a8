"""Reliability bins and the expected calibration error, on hand-made answers whose ECE is known."""

import numpy as np
import pytest

from backend.inspection.calibration import BINS, Calibration, calibration_of, reliability
from backend.inspection.evaluation import evaluate


def test_a_model_right_as_often_as_it_is_sure_has_no_calibration_error():
    # 10 answers at 0.8 (8 right) and 10 at 0.3 (3 right)
    confidence = [0.8] * 10 + [0.3] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    calibration = reliability(confidence, correct, bins=10)
    assert calibration.ece == pytest.approx(0.0)
    filled = [b for b in calibration.bins if b.count]
    assert [(b.low, b.high, b.count, b.accuracy, b.confidence) for b in filled] == [
        (pytest.approx(0.2), pytest.approx(0.3), 10, pytest.approx(0.3), pytest.approx(0.3)),
        (pytest.approx(0.7), pytest.approx(0.8), 10, pytest.approx(0.8), pytest.approx(0.8))]


def test_always_sure_and_right_half_the_time_is_an_ece_of_one_half():
    calibration = reliability([1.0] * 4, [True, False, True, False])
    assert calibration.ece == pytest.approx(0.5)
    assert calibration.bins[-1].count == 4 and calibration.bins[-1].gap == pytest.approx(0.5)
    assert calibration.sure_wrong == 2
    assert "over-confident" in calibration.summary() and "2 wrong answers were given with 99% confidence" \
        in calibration.summary()


def test_the_ece_weights_each_bin_by_its_share_of_the_answers():
    # 3 answers at 0.95, all right (gap 0.05); 1 answer at 0.55, wrong (gap 0.55)
    calibration = reliability([0.95, 0.95, 0.95, 0.55], [True, True, True, False], bins=10)
    assert calibration.ece == pytest.approx((3 * 0.05 + 1 * 0.55) / 4)
    assert calibration.n == 4 and calibration.accuracy == pytest.approx(0.75)
    assert calibration.mean_confidence == pytest.approx(0.85)


def test_under_confidence_counts_as_a_gap_too():
    calibration = reliability([0.6] * 5, [True] * 5, bins=10)
    assert calibration.ece == pytest.approx(0.4)
    assert "under-confident" in calibration.summary()


def test_bins_are_right_closed_so_edges_land_where_the_convention_puts_them():
    calibration = reliability([0.0, 0.1, 0.10001, 1.0], [True] * 4, bins=10)
    assert [b.count for b in calibration.bins] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert len(reliability([0.5], [True]).bins) == BINS == 15


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="2 confidences for 1 answers"):
        reliability([0.5, 0.5], [True])
    with pytest.raises(ValueError, match="from 0 to 1"):
        reliability([1.5], [True])


def test_a_calibration_survives_its_json_and_an_evaluation_without_probabilities_has_none():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    evaluation = evaluate(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]), ("a", "b"), probabilities)
    calibration = calibration_of(evaluation)
    assert calibration is not None and calibration.n == 4
    # bins: 0.9 right, 0.8 right, 0.6 wrong, 0.7 wrong -> |0.9-1| + |0.8-1| + |0.6-0| + |0.7-0| over 4
    assert calibration.ece == pytest.approx((0.1 + 0.2 + 0.6 + 0.7) / 4)
    assert Calibration.from_json(calibration.to_json()) == calibration
    assert calibration_of(evaluate(np.array([0, 1]), np.array([0, 1]), ("a", "b"))) is None


def test_no_answers_is_no_error_and_says_so():
    calibration = reliability([], [])
    assert calibration.ece == 0.0 and calibration.summary() == "No answers to measure."


def test_a_confidence_on_an_edge_is_not_pushed_up_a_bin_by_rounding():
    for kept in (0.6, np.float32(0.6)):  # float32's 0.6 is 0.6000000238 (kept probabilities are float32)
        calibration = reliability([kept], [True])
        assert [b.count for b in calibration.bins].index(1) == 8  # (8/15, 9/15]


def _deployment():
    from backend.runtimes import DeployConfig
    from backend.runtimes.base import Deployment, DeploymentRecord, DeploymentState

    return Deployment(record=DeploymentRecord(
        name="cal", uid="u-cal", home_id="h", home="/h", model_name="m", model_version=1, model_sha256="s",
        config=DeployConfig(), entry_script="score.py", created_at="2026-01-01T00:00:00+00:00"),
        runtime="local", state=DeploymentState.HEALTHY, scoring_uri=None)


def test_a_kept_evaluation_keeps_its_reliability_bins_and_an_older_log_reads_and_grows(tmp_path):
    import sqlite3

    from backend.data.testset import TestSet
    from backend.inspection.evaluation_log import _SCHEMA, EvaluationLog, EvaluationRecord

    db = tmp_path / "registry.sqlite3"
    with sqlite3.connect(db) as conn:  # the table as releases before calibration made it, with one row
        conn.execute(_SCHEMA.replace(",\n    calibration TEXT", ""))
        conn.execute("INSERT INTO evaluations (deployment, deployment_uid, model_name, model_version, model_sha256, "
                     "dataset, dataset_sha256, perturbation, accuracy, n, labels, confusion, precision, recall, "
                     "created_at, duration_s, source) VALUES ('old', 'u', 'm', 1, 's', 'toy', 'h', '', 1.0, 1, "
                     "'[\"a\"]', '[[1]]', '[1.0]', '[1.0]', '2026-01-01T00:00:00+00:00', 0.1, 'cli')")
    testset = TestSet("toy", np.zeros((4, 4), np.float32), np.array([0, 1, 1, 0]), (2, 2), ("a", "b"), "t")
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    evaluation = evaluate(testset.y, np.array([0, 1, 0, 1]), testset.class_names, probabilities)
    log = EvaluationLog(db)
    log.add(EvaluationRecord.of(_deployment(), testset, evaluation, duration_s=0.1, source="test"))
    log.add(EvaluationRecord.of(_deployment(), testset, evaluate(testset.y, testset.y, testset.class_names),
                                duration_s=0.1, source="labels only"))
    labels_only, new, old = log.list()
    assert old.deployment == "old" and old.calibration is None and old.to_dict()["ece"] is None
    assert labels_only.calibration is None
    assert new.calibration == calibration_of(evaluation)
    assert new.to_dict()["ece"] == pytest.approx(0.4) and len(new.to_dict()["calibration"]["bins"]) == BINS
