"""Pure parts behind "one view of every deployment": the deployment record, deploy-config ranges,
home ids, progress events, signatures, test sets that fit a model, and kept results."""

import threading

import numpy as np
import pytest

from backend.config import open_home
from backend.data.catalogue import load_dataset, sets_fitting
from backend.data.fit import mismatch
from backend.errors import DatasetMismatchError, DuplicateModelError, InvalidDeployConfigError, RegistryError
from backend.inspection.evaluation import Curve, RobustnessPoint, Samples, evaluate
from backend.inspection.figures import tile_title
from backend.inspection.kept_results import ResultStore
from backend.progress import ProgressEvent, ProgressKind
from backend.registry import ModelRegistry, Signature, parse_signature
from backend.runtimes.base import DeployConfig, Deployment, DeploymentRecord, DeploymentState
from backend.training import MNIST_SIGNATURE

RECORD = DeploymentRecord(name="demo", uid="0123abcd", home_id="h0me1d00", home="/home/me/modeldeck",
                          model_name="sklearn_mnist", model_version=3, model_sha256="ab" * 32,
                          config=DeployConfig(cpu_cores=1.5, memory_gb=0.125, tags={"team": "qa", "a=b": "c,d"},
                                              description="déjà vu: \"quoted\""),
                          entry_script="score.py", created_at="2026-11-26T21:00:00+00:00")


def test_a_record_survives_container_labels_and_json_unchanged():
    labels = RECORD.to_labels()
    assert all(isinstance(v, str) for v in labels.values()) and all(k.startswith("modeldeck.") for k in labels)
    assert DeploymentRecord.from_labels({**labels, "org.opencontainers.other": "x"}) == RECORD
    assert DeploymentRecord.from_json(RECORD.to_json()) == RECORD


def test_a_record_from_an_older_container_without_new_labels_still_reads():
    old = DeploymentRecord.from_labels({"modeldeck.name": "legacy", "modeldeck.config": "{}"})
    assert (old.name, old.home_id, old.config) == ("legacy", "", DeployConfig())


@pytest.mark.parametrize(("cpu", "memory", "message"), [
    (0, 1, "CPU cores must be between 0.1 and 64, got 0"),
    (65, 1, "CPU cores must be between 0.1 and 64, got 65"),
    (1, 0.01, "memory must be between 0.03125 and 1024 GB, got 0.01"),
    (1, float("nan"), "memory must be between 0.03125 and 1024 GB, got nan"),
])
def test_deploy_config_ranges_are_one_rule_with_one_message(cpu, memory, message):
    with pytest.raises(InvalidDeployConfigError) as caught:
        DeployConfig(cpu_cores=cpu, memory_gb=memory)
    assert str(caught.value) == message


def test_the_range_ends_themselves_are_accepted():
    assert DeployConfig(cpu_cores=0.1, memory_gb=0.03125).memory_gb == 0.03125
    assert DeployConfig(cpu_cores=64, memory_gb=1024).cpu_cores == 64


def test_a_home_gets_one_id_even_when_two_processes_open_it_at_once(tmp_path):
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(open_home(tmp_path / "home").id)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1 and len(ids[0]) == 8
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    assert open_home(tmp_path / "home").id == ids[0]
    assert open_home(tmp_path / "other").id != ids[0]


def test_progress_events_print_with_their_kind():
    assert str(ProgressEvent(ProgressKind.STEP, "building")) == "building"
    assert str(ProgressEvent(ProgressKind.BUILD_LOG, "Step 1/9")) == "build: Step 1/9"
    assert str(ProgressEvent(ProgressKind.SERVER_LOG, "listening")) == "log: listening"


def test_signatures_parse_what_people_type():
    image = parse_signature("28x28", "0-1", "0-9")
    assert (image.n_features, image.image_shape, image.value_range) == (784, (28, 28), (0.0, 1.0))
    assert image.class_labels == tuple("0123456789") and image.source == "declared at registration"
    assert parse_signature("64", "0..16", "cat, dog").class_labels == ("cat", "dog")
    assert parse_signature("4", "-1, 1").value_range == (-1.0, 1.0)
    assert parse_signature("") == Signature()
    for bad, match in (("28 by 28", "HEIGHTxWIDTH"), ("0", "at least one value")):
        with pytest.raises(RegistryError, match=match):
            parse_signature(bad)
    with pytest.raises(RegistryError, match="low end must be below"):
        parse_signature("4", "1-0")
    with pytest.raises(RegistryError, match="at least two labels"):
        parse_signature("4", "", "only")


def test_a_signature_reads_as_a_sentence():
    assert MNIST_SIGNATURE.describe().startswith("28x28 image (784 values) in [0, 1] → 10 classes: 0, 1, 2")
    assert Signature().describe() == "input signature unknown (recorded at the first deployment)"
    assert Signature.from_dict(MNIST_SIGNATURE.to_dict()) == MNIST_SIGNATURE


def test_only_test_sets_that_fit_the_signature_are_offered_and_the_others_say_why():
    fit = sets_fitting(MNIST_SIGNATURE)
    fitting, hidden = fit.fitting, fit.hidden
    assert [d.name for d in fitting][0] == "mnist" and "digits" not in [d.name for d in fitting]
    why = dict((d.name, reason) for d, reason in hidden)
    assert why["digits"] == "its images are 8x8; the model takes 28x28"
    rows_model = Signature(n_features=784)  # no image shape declared: the number of values decides
    assert dict((d.name, r) for d, r in sets_fitting(rows_model).hidden)["digits"] == (
        "its images have 8x8 = 64 values; the model takes 784")
    digits_model = Signature(n_features=64, image_shape=(8, 8), class_labels=tuple("0123456789"))
    assert [d.name for d in sets_fitting(digits_model).fitting] == ["digits"]
    three_classes = Signature(n_features=784, class_labels=("a", "b", "c"))
    assert "it has 10 classes; the model has 3" in [r for d, r in sets_fitting(three_classes).hidden if d.name == "mnist"]
    unknown = [d.name for d in sets_fitting(Signature()).fitting]
    assert {"mnist", "digits"} <= set(unknown)  # an unknown signature hides nothing that is installed
    with pytest.raises(DatasetMismatchError, match="test set 'digits' does not fit this model"):
        load_dataset("digits", MNIST_SIGNATURE)


def test_fashion_mnist_is_offered_only_when_installed(monkeypatch, tmp_path):
    from backend.data import builtin
    from backend.data.catalogue import catalogue

    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "missing")
    fashion = next(d for d in catalogue() if d.name == "fashion-mnist")
    assert not fashion.installed and mismatch(fashion, Signature()).startswith("not installed")


def test_registering_identical_files_again_names_the_version_that_holds_them(tmp_path):
    registry = ModelRegistry(tmp_path / "r.sqlite3", tmp_path / "blobs")
    path = tmp_path / "model.pkl"
    path.write_bytes(b"weights")
    registry.register("digits", [path], signature=MNIST_SIGNATURE)
    with pytest.raises(DuplicateModelError, match="registered already as digits:1"):
        registry.register("digits", [path])
    assert registry.register("other_name", [path]).version == 1  # another name may hold the same bytes
    assert [m.id for m in registry.list()] == ["digits:1", "other_name:1"]
    assert registry.get("digits").signature == MNIST_SIGNATURE


def test_the_scoring_server_confirms_what_an_upload_declared(tmp_path):
    registry = ModelRegistry(tmp_path / "r.sqlite3", tmp_path / "blobs")
    path = tmp_path / "model.pkl"
    path.write_bytes(b"weights")
    model = registry.register("upload", [path], signature=parse_signature("20x20"))
    confirmed = registry.confirm_signature(model, 784, ["0", "1"], source="deployment demo")
    assert confirmed.signature.n_features == 784 and confirmed.signature.image_shape is None  # 20x20 was wrong
    assert confirmed.signature.class_labels == ("0", "1")
    assert confirmed.signature.source == "declared at registration; confirmed by deployment demo"
    assert registry.confirm_signature(confirmed, 784, ["0", "1"], source="deployment again") == confirmed
    assert registry.confirm_signature(confirmed, None, None, source="a tutorial script") == confirmed


def deployment(uid: str, name: str = "demo") -> Deployment:
    record = DeploymentRecord(name=name, uid=uid, home_id="h", home="/h", model_name="m", model_version=1,
                              model_sha256="", config=DeployConfig(), entry_script="score.py", created_at="t")
    return Deployment(record=record, runtime="local", state=DeploymentState.HEALTHY, scoring_uri="http://x/score")


def test_kept_results_come_back_only_for_the_same_deployment_and_test_set(tmp_path):
    store = ResultStore(tmp_path / "results")
    first, successor = deployment("uid-1"), deployment("uid-2")  # same name, a new deployment
    samples = Samples(indices=np.array([3, 9]), images=np.zeros((2, 4), np.float32), labels=np.array([1, 2]),
                      predictions=np.array([1, 0]), image_shape=(2, 2), class_names=("a", "b", "c"))
    y_true = np.array([0, 1, 2, 2])
    evaluation = evaluate(y_true, np.array([0, 1, 1, 2]), ("a", "b", "c"))
    store.save_samples(first, "mnist", samples)
    store.save_evaluation(first, "mnist", y_true, evaluation)
    loaded = store.load_samples(first, "mnist")
    assert loaded is not None and loaded.class_names == ("a", "b", "c") and loaded.image_shape == (2, 2)
    assert np.array_equal(loaded.predictions, samples.predictions) and list(loaded.correct) == [True, False]
    again = store.load_evaluation(first, "mnist")
    assert again is not None and again.accuracy == evaluation.accuracy
    assert np.array_equal(again.confusion, evaluation.confusion)
    assert store.saved_at(first, "mnist", "samples") is not None
    assert store.load_samples(successor, "mnist") is None and store.load_evaluation(first, "digits") is None
    store.forget(first)
    assert store.load_samples(first, "mnist") is None and store.saved_at(first, "mnist", "samples") is None


def test_tiles_are_titled_prediction_then_true_label():
    assert tile_title(3, 8, tuple("0123456789")) == "3 (8)"
    assert tile_title(12, 1, ("cat", "dog")) == "12 (dog)"


def test_what_a_runtime_recorded_is_read_back_even_under_todays_stricter_ranges():
    config = DeployConfig.from_dict({"cpu_cores": 0.05, "memory_gb": "0.03", "tags": {"a": 1}})
    assert (config.cpu_cores, config.memory_gb, config.tags) == (0.05, 0.03, {"a": "1"})
    broken = DeploymentRecord.from_labels({"modeldeck.name": "x", "modeldeck.config": "{not json",
                                           "modeldeck.model_version": "seven"})
    assert (broken.config, broken.model_version) == (DeployConfig(), 0)


def test_containers_labelled_before_homes_existed_read_as_records_without_a_home():
    old = DeploymentRecord.from_labels({"modeldeck.deployment": "demo", "modeldeck.model.name": "sklearn_mnist",
                                        "modeldeck.model.version": "2", "modeldeck.config": '{"cpu_cores": 2}'})
    assert (old.name, old.model_id, old.home_id, old.config.cpu_cores) == ("demo", "sklearn_mnist:2", "", 2.0)


def test_answers_become_label_indices_of_the_test_set_or_a_clear_error():
    from backend.errors import UnexpectedAnswerError
    from backend.inspection.evaluation import label_indices

    digits = tuple("0123456789")
    assert label_indices([7, 2.0, 1], digits, 3).tolist() == [7, 2, 1]
    assert label_indices(["Bag", "Coat"], ("Coat", "Bag"), 2).tolist() == [1, 0]
    for answer, rows, message in (([7, 12], 2, "label 12, which this test set does not have"),
                                  (["cat"], 1, "'cat', which is not a class of this test set"),
                                  ([1, 2], 3, "for 3 rows: expected one label per row"),
                                  ({"predictions": [1]}, 1, "expected one label per row")):
        with pytest.raises(UnexpectedAnswerError, match=message):
            label_indices(answer, digits, rows)


def test_value_range_and_named_labels_decide_which_test_sets_fit():
    raw_pixels = Signature(n_features=784, value_range=(0.0, 255.0))
    assert "its values are in [0, 1]; the model takes [0, 255]" in dict(
        (d.name, why) for d, why in sets_fitting(raw_pixels).hidden)["mnist"]
    named = Signature(n_features=784, class_labels=tuple(f"class {i}" for i in range(10)))
    assert "mnist" not in [d.name for d in sets_fitting(named).fitting]
    numbered = Signature(n_features=784, class_labels=tuple(str(i) for i in range(10)))
    assert "mnist" in [d.name for d in sets_fitting(numbered).fitting]


def test_the_request_body_limit_follows_the_memory_limit_unless_set():
    assert DeployConfig(cpu_cores=1, memory_gb=1).body_limit_mb == 128
    assert DeployConfig(cpu_cores=2, memory_gb=1).body_limit_mb == 78  # two workers may parse at once
    assert DeployConfig(cpu_cores=1, memory_gb=0.25).body_limit_mb == 64  # the tutorial's 58 MiB still fits
    assert DeployConfig(max_body_mb=10).body_limit_mb == 10
    with pytest.raises(InvalidDeployConfigError, match="the request body limit must be between 1 and 4096 MB"):
        DeployConfig(max_body_mb=0.5)
    assert DeployConfig.from_dict(DeployConfig(max_body_mb=10).to_dict()).max_body_mb == 10


def test_a_home_and_its_registry_are_private_even_when_made_before(tmp_path):
    old = tmp_path / "old-home"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    home = open_home(old)
    registry = ModelRegistry(home.path / "registry.sqlite3", home.path / "blobs")
    path = tmp_path / "m.pkl"
    path.write_bytes(b"weights")
    model = registry.register("m", [path])
    assert old.stat().st_mode & 0o777 == 0o700
    assert registry.db_path.stat().st_mode & 0o777 == 0o600
    assert (registry.blobs_dir / model.files[0].sha256).stat().st_mode & 0o777 == 0o600


def test_the_evaluation_log_keeps_every_scoring_newest_first_and_filters(tmp_path):
    from backend.data.testset import TestSet
    from backend.inspection.evaluation import evaluate
    from backend.inspection.evaluation_log import EvaluationLog, EvaluationRecord, testset_sha256
    from backend.registry import ModelRegistry

    registry = ModelRegistry(tmp_path / "registry.sqlite3", tmp_path / "blobs")
    log = EvaluationLog(registry.db_path)
    testset = TestSet("toy", np.zeros((4, 4), np.float32), np.array([0, 1, 1, 2]), (2, 2), ("a", "b", "c"), "t")
    evaluation = evaluate(testset.y, np.array([0, 1, 1, 1]), testset.class_names)
    for name, version in (("one", 1), ("two", 1), ("one", 2)):
        deployment = Deployment(record=DeploymentRecord(
            name=name, uid=f"u-{name}", home_id="h", home="/h", model_name="m", model_version=version, model_sha256="s",
            config=DeployConfig(), entry_script="score.py", created_at="2026-01-01T00:00:00+00:00"),
            runtime="local", state=DeploymentState.HEALTHY, scoring_uri=None)
        stored = log.add(EvaluationRecord.of(deployment, testset, evaluation, duration_s=0.5, source="test"))
        assert stored.id > 0
    assert [r.deployment for r in log.list()] == ["one", "two", "one"]
    assert [r.model_version for r in log.list(deployment="one")] == [2, 1]
    assert [r.deployment for r in log.list(model_name="m", model_version=1)] == ["two", "one"]
    first = log.list()[-1]
    assert first.accuracy == 0.75 and first.confusion == ((1, 0, 0), (0, 2, 0), (0, 1, 0)) and first.n == 4
    assert first.dataset == "toy" and first.dataset_sha256 == testset_sha256(testset)
    assert EvaluationLog(tmp_path / "none.sqlite3").list() == []  # reads never write
    assert not (tmp_path / "none.sqlite3").exists()


def test_a_kept_curve_says_how_many_of_its_strengths_were_scored(tmp_path):
    store = ResultStore(tmp_path / "results")
    demo = deployment("uid-1")
    points = (RobustnessPoint(0.0, 0.9), RobustnessPoint(15.0, 0.7))
    store.save_curve(demo, "mnist", "rotate", Curve(points, 4))
    kept = store.load_curve(demo, "mnist", "rotate")
    assert kept == Curve(points, 4) and kept.partial
    store.save_curve(demo, "mnist", "rotate", Curve(points, 2))
    assert not store.load_curve(demo, "mnist", "rotate").partial
    path = next((tmp_path / "results").rglob("*robustness-rotate*"))
    np.savez(path, strengths=np.array([0.0, 15.0]), accuracies=np.array([0.9, 0.7]))  # kept before `planned`
    assert store.load_curve(demo, "mnist", "rotate") == Curve(points, 2)
