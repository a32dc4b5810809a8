import pytest

from backend.errors import ChecksumMismatchError, DuplicateModelError, ModelNotFoundError, RegistryError
from backend.registry import ModelRegistry, NewModel, parse_model_ref


@pytest.fixture()
def registry(tmp_path):
    return ModelRegistry(tmp_path / "registry.sqlite3", tmp_path / "blobs")


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"not really a pickle, but bytes to store")
    return path


def test_registering_a_new_name_gives_version_1_and_records_library_versions(registry, model_file):
    model = registry.register("digits", [model_file], tags={"team": "a"}, description="d", metrics={"accuracy": 0.9})
    assert model.version == 1
    assert model.files[0].name == "model.pkl"
    assert model.files[0].size == model_file.stat().st_size
    assert set(model.library_versions) >= {"python", "scikit-learn", "numpy", "joblib"}
    assert model.tags == {"team": "a"} and model.metrics == {"accuracy": 0.9} and model.description == "d"


def test_registering_the_same_name_again_creates_the_next_version_and_get_returns_the_latest(registry, model_file):
    registry.register("digits", [model_file])
    model_file.write_bytes(b"second version")
    second = registry.register("digits", [model_file])
    assert second.version == 2
    assert registry.get("digits").version == 2
    assert registry.get("digits", 1).files[0].sha256 != second.files[0].sha256
    assert registry.get_ref("digits:1").version == 1


def test_registry_survives_a_new_instance(registry, model_file, tmp_path):
    registry.register("digits", [model_file])
    again = ModelRegistry(tmp_path / "registry.sqlite3", tmp_path / "blobs")
    assert [m.id for m in again.list()] == ["digits:1"]


def test_unknown_model_names_what_is_registered(registry, model_file):
    registry.register("digits", [model_file])
    with pytest.raises(ModelNotFoundError, match=r"'nope' is not registered \(registered: digits:1\)"):
        registry.get("nope")
    with pytest.raises(ModelNotFoundError):
        registry.get("digits", 7)


@pytest.mark.parametrize("name", ["", "has space", "-dash", "x" * 101, "semi;colon"])
def test_invalid_model_names_are_refused(registry, model_file, name):
    with pytest.raises(RegistryError, match="is not valid"):
        registry.register(name, [model_file])


def test_missing_file_is_refused(registry, tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register("digits", [tmp_path / "missing.pkl"])


def test_materialize_copies_files_after_checking_their_sha256(registry, model_file, tmp_path):
    model = registry.register("digits", [model_file])
    out = registry.materialize(model, tmp_path / "out")
    assert (out / "model.pkl").read_bytes() == model_file.read_bytes()


def test_a_changed_blob_is_caught_before_deployment(registry, model_file, tmp_path):
    model = registry.register("digits", [model_file])
    (registry.blobs_dir / model.files[0].sha256).write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match="changed on disk"):
        registry.materialize(model, tmp_path / "out")


def test_parse_model_ref():
    assert parse_model_ref("m") == ("m", None)
    assert parse_model_ref("m:3") == ("m", 3)
    with pytest.raises(RegistryError, match="positive whole number"):
        parse_model_ref("m:latest")


def test_concurrent_registrations_by_separate_processes_never_fail_or_corrupt_the_registry(tmp_path):
    """20 processes at once: 10 register one file under 10 names, 10 register 10 different files as
    versions of one name."""
    import subprocess
    import sys

    shared = tmp_path / "shared.pkl"
    shared.write_bytes(b"the same bytes for everyone" * 1000)
    files = []
    for i in range(10):
        files.append(tmp_path / f"v{i}.pkl")
        files[-1].write_bytes(f"model number {i}".encode() * 1000)
    code = ("import sys; from pathlib import Path; from backend.registry import ModelRegistry; "
            "r = ModelRegistry(Path(sys.argv[1]) / 'registry.sqlite3', Path(sys.argv[1]) / 'blobs'); "
            "print(r.register(sys.argv[2], [Path(sys.argv[3])]).id)")
    jobs = [(f"same-{i}", shared) for i in range(10)] + [("many", path) for path in files]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "home"), name, str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, path in jobs]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results if err]
    registry = ModelRegistry(tmp_path / "home" / "registry.sqlite3", tmp_path / "home" / "blobs")
    assert sorted(m.version for m in registry.list() if m.name == "many") == list(range(1, 11))
    assert {m.name for m in registry.list()} == {"many"} | {f"same-{i}" for i in range(10)}
    blobs = sorted(p.name for p in (tmp_path / "home" / "blobs").iterdir())
    assert len(blobs) == 11 and not [b for b in blobs if b.endswith(".tmp")]
    for model in registry.list():
        registry.materialize(model, tmp_path / "check" / model.id.replace(":", "-"))  # every sha256 verifies


def _files(tmp_path, *contents):
    paths = []
    for i, content in enumerate(contents):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        (folder / "model.pkl").write_bytes(content)
        paths.append(folder / "model.pkl")
    return paths


def test_register_all_gives_consecutive_versions_in_one_go(registry, tmp_path):
    one, two = _files(tmp_path, b"v1 bytes", b"v2 bytes")
    models = registry.register_all([NewModel("digits", (one,), tags={"a": "1"}), NewModel("digits", (two,))])
    assert [m.id for m in models] == ["digits:1", "digits:2"] and models[0].tags == {"a": "1"}
    assert [m.id for m in registry.list()] == ["digits:1", "digits:2"]


def test_register_all_into_an_empty_registry_adds_nothing_once_another_registered_first(registry, tmp_path):
    one, two, mine = _files(tmp_path, b"v1 bytes", b"v2 bytes", b"other bytes")
    first = registry.register_all([NewModel("digits", (one,)), NewModel("digits", (two,))], only_into_empty=True)
    assert [m.version for m in first] == [1, 2]
    # a second first run, whose files need not be byte-identical, adds no v3/v4
    assert registry.register_all([NewModel("digits", (mine,)), NewModel("digits", (two,))],
                                 only_into_empty=True) == []
    assert [m.id for m in registry.list()] == ["digits:1", "digits:2"]


def test_register_all_registers_none_when_one_of_them_is_a_duplicate(registry, tmp_path):
    one, two = _files(tmp_path, b"v1 bytes", b"v2 bytes")
    registry.register("digits", [one])
    with pytest.raises(DuplicateModelError, match="registered already as digits:1"):
        registry.register_all([NewModel("other", (two,)), NewModel("digits", (one,))])
    assert [m.id for m in registry.list()] == ["digits:1"]  # "other" was rolled back with it
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register_all([NewModel("other", (two,)), NewModel("other", (tmp_path / "nope.pkl",))])
    assert [m.id for m in registry.list()] == ["digits:1"]
