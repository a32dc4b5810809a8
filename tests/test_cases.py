"""Flagged cases: kept exactly as scored in one SQLite book (concurrent flags, a kill mid-write), one test set per
form (`cases`, `cases-2`, names kept), usable wherever a test set is; exported for `datasets add`; replayed at a
deployment and against another (which it fixes and breaks), checked against the endpoint's own answers."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backend.config import Settings
from backend.data.builtin import load_breast_cancer_test, load_mnist_test
from backend.data.cases import CaseBook, CaseForm, CaseSource
from backend.data.catalogue import catalogue, load_dataset
from backend.data.store import import_dataset, load_user_dataset
from backend.errors import CaseError, CaseNotFoundError, InvalidDatasetNameError
from backend.services.cases import flag_row, replay
from backend.services.scoring import score_rows

from .conftest import stroke_png
from .test_cli import cli

MNIST_FORM = CaseForm(tuple("0123456789"), (28, 28), (0.0, 1.0))
SOURCE = CaseSource("test set", dataset="mnist", dataset_index=3)


def digit(value: float = 0.5) -> np.ndarray:
    return np.full(784, value, dtype=np.float32)


def test_cases_of_each_form_make_a_set_whose_name_is_kept(tmp_path):
    book = CaseBook(tmp_path)
    assert book.cases() == [] and book.infos() == [] and not book.path.exists()  # reads never write
    first = book.add(digit(0.25), MNIST_FORM, "4", "a 4 drawn open at the top", SOURCE, "ann")
    table = load_breast_cancer_test()
    row = book.add(table.X[0], CaseForm.of(table), "benign", "", CaseSource("test set", dataset="breast-cancer",
                                                                           dataset_index=0), "bob")
    second = book.add(digit(0.75), MNIST_FORM, "9", "", SOURCE, "ann")
    assert (first.set_name, row.set_name, second.set_name) == ("cases", "cases-2", "cases")
    assert oct(book.path.stat().st_mode & 0o777) == "0o600"
    cases = book.testset("cases")
    assert cases.X.shape == (2, 784) and np.array_equal(cases.X[1], digit(0.75)) and cases.y.tolist() == [4, 9]
    assert cases.image_shape == (28, 28) and cases.class_names == MNIST_FORM.class_names
    rows = book.testset("cases-2")
    assert rows.feature_names == table.feature_names and np.array_equal(rows.X[0], table.X[0])
    assert [c.id for c in book.cases()] == [first.id, row.id, second.id] and first.flagged_by == "ann"
    book.remove(row.id)
    assert [info.name for info in book.infos()] == ["cases"]  # an empty set is not listed
    again = book.add(table.X[1], CaseForm.of(table), "malignant", "", SOURCE, "bob")
    assert again.set_name == "cases-2"  # its form keeps its name
    with pytest.raises(CaseNotFoundError, match="no case 'c-nothing'"):
        book.remove("c-nothing")


def test_a_bad_flag_is_refused_and_nothing_is_kept(tmp_path):
    book = CaseBook(tmp_path)
    with pytest.raises(CaseError, match=r"the label 'four' is not one of the classes \(0, 1, 2"):
        book.add(digit(), MNIST_FORM, "four", "", SOURCE, "ann")
    with pytest.raises(CaseError, match="a note takes at most 2,000 characters"):
        book.add(digit(), MNIST_FORM, "4", "x" * 2001, SOURCE, "ann")
    with pytest.raises(CaseError, match="holds 784 finite values, not 783"):
        book.add(digit()[:-1], MNIST_FORM, "4", "", SOURCE, "ann")
    with pytest.raises(CaseError, match="finite values"):
        book.add(np.full(784, np.nan, dtype=np.float32), MNIST_FORM, "4", "", SOURCE, "ann")
    assert book.cases() == []
    kept = book.add(digit(), MNIST_FORM, "4", "", SOURCE, "ann")
    with pytest.raises(CaseError, match=f"this input is flagged as '4' already \\({kept.id}\\)"):
        book.add(digit(), MNIST_FORM, "4", "a second click", SOURCE, "ann")  # a double click on Flag
    assert book.add(digit(), MNIST_FORM, "9", "", SOURCE, "bob").label == "9"  # another label is another case
    assert len(book.cases()) == 2


def test_flags_from_two_tabs_at_once_all_land(tmp_path):
    book = CaseBook(tmp_path)
    errors: list[Exception] = []

    def flag(label: str) -> None:
        try:
            for k in range(40):
                CaseBook(tmp_path).add(digit(k / 40), MNIST_FORM, label, f"tab {label}", SOURCE, "ann")
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    tabs = [threading.Thread(target=flag, args=(label,)) for label in ("1", "7")]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    assert errors == [] and len(book.cases()) == 80 and len({c.id for c in book.cases()}) == 80


def test_a_book_read_the_instant_it_is_made_reads_as_empty(tmp_path):
    book = CaseBook(tmp_path)
    book.path.touch()  # the first flag's file, before its tables (seen: a reader between the two)
    assert book.cases() == [] and book.infos() == []


def test_a_flagger_killed_mid_write_leaves_every_kept_case_whole(tmp_path):
    script = ("import sys, numpy as np\nfrom backend.data.cases import CaseBook, CaseForm, CaseSource\n"
              "book = CaseBook(sys.argv[1]); form = CaseForm(tuple('0123456789'), (28, 28))\n"
              "while True:\n    book.add(np.random.rand(784).astype(np.float32), form, '3', 'n' * 1500, "
              "CaseSource('test set'), 'ann')\n")
    flagger = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 30
    while len(CaseBook(tmp_path).cases()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(flagger.pid, signal.SIGKILL)
    flagger.wait()
    cases = CaseBook(tmp_path).cases()
    assert len(cases) >= 20 and all(c.row.shape == (784,) and c.note == "n" * 1500 for c in cases)
    assert CaseBook(tmp_path).add(digit(), MNIST_FORM, "3", "", SOURCE, "ann").set_name == "cases"


def test_a_case_set_is_a_test_set_like_any_other(tmp_path):
    book = CaseBook(tmp_path / "sets")
    book.add(digit(0.25), MNIST_FORM, "4", "", SOURCE, "ann")
    listed = {info.name: info for info in catalogue(tmp_path / "sets")}
    assert listed["cases"].title == "Flagged cases (1)" and listed["cases"].image_shape == (28, 28)
    loaded = load_dataset("cases", None, tmp_path / "sets")
    assert loaded.y.tolist() == [4] and np.array_equal(loaded.X[0], digit(0.25))
    (tmp_path / "x.npz").write_bytes(b"")
    for name in ("cases", "cases-7"):
        with pytest.raises(InvalidDatasetNameError, match="is kept for flagged cases"):
            import_dataset(tmp_path / "sets", name, [tmp_path / "x.npz"])
    with pytest.raises(CaseNotFoundError, match=r"no flagged cases in 'cases-3' \(case sets: cases\)"):
        load_dataset("cases-3", None, tmp_path / "sets")


# --- at real deployments ---------------------------------------------------------------------------------------

def test_replay_says_what_each_version_gets_right_fixes_and_breaks(first_run_deck, tmp_path):
    deck = first_run_deck
    one = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "one", runtime="local", timeout=180)
    two = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 2), "two", runtime="local", timeout=180)
    mnist = load_mnist_test()
    rows = np.arange(200)
    said_one = score_rows(deck, one, mnist.X[rows], mnist)[0]
    said_two = score_rows(deck, two, mnist.X[rows], mnist)[0]
    # the rows one version gets wrong and the other right, both ways, and two both get right
    picked = [int(rows[k]) for k in np.flatnonzero((said_one != mnist.y[rows]) | (said_two != mnist.y[rows]))[:6]]
    picked += [int(k) for k in rows[(said_one == mnist.y[rows]) & (said_two == mnist.y[rows])][:2]]
    for index in picked:
        flag_row(deck, mnist, index, mnist.class_names[mnist.y[index]], f"row {index}", deployment=one)
    result = replay(deck, "two", against="sklearn_mnist:1")  # the version: served by `one` already
    assert result.set_name == "cases" and result.deployment == "two" and result.against == "one"
    right_two = [bool(said_two[k] == mnist.y[k]) for k in picked]
    right_one = [bool(said_one[k] == mnist.y[k]) for k in picked]
    assert [a.right for a in result.answers] == right_two and [a.right for a in result.against_answers] == right_one
    assert [a.said for a in result.answers] == [mnist.class_names[said_two[k]] for k in picked]
    assert len(result.fixed) == sum(t and not o for t, o in zip(right_two, right_one, strict=True))
    assert len(result.broken) == sum(o and not t for t, o in zip(right_two, right_one, strict=True))
    assert result.summary().startswith(f"two gets {sum(right_two)} of {len(picked)} flagged cases right; it fixes ")
    kept = deck.evaluations.list(deployment="two")
    assert kept and kept[0].dataset == "cases" and kept[0].source == "cases replay"
    assert result.cases[0].source.describe() == f"mnist #{picked[0]}, at one (sklearn_mnist:1)"


def test_the_cli_flags_lists_replays_exports_and_removes(first_run_cli_env, tmp_path):
    env = first_run_cli_env

    cli(env, "deploy", "sklearn_mnist:1", "--name", "cli-one")
    added = json.loads(cli(env, "cases", "add", "--dataset", "mnist", "--index", "7", "--perturb", "rotate=30",
                           "--label", "9", "--note", "tilted", "--deployment", "cli-one", "--json").stdout)
    assert added["set"] == "cases" and added["perturbation"] == "rotate=30" and added["model"] == "sklearn_mnist:1"
    (tmp_path / "blank.png").write_bytes(stroke_png())
    cli(env, "cases", "add", "--image", str(tmp_path / "blank.png"), "--dataset", "mnist", "--label", "0")
    refused = cli(env, "cases", "add", "--dataset", "mnist", "--index", "1", "--label", "ten", check=False)
    assert refused.returncode == 1 and "is not one of the classes" in refused.stderr
    listed = json.loads(cli(env, "cases", "list", "--json").stdout)
    assert [c["origin"] for c in listed] == ["test set", "file"] and listed[0]["note"] == "tilted"
    replayed = json.loads(cli(env, "cases", "replay", "cli-one", "--json").stdout)
    assert replayed["cases"] == 2 and [a["id"] for a in replayed["answers"]] == [c["id"] for c in listed]
    assert "flagged cases right" in cli(env, "cases", "replay", "cli-one").stdout
    cli(env, "cases", "export", "--out", str(tmp_path / "cases.npz"))
    cli(env, "datasets", "add", "flagged", str(tmp_path / "cases.npz"))
    home = Path(env["MODELDECK_HOME"])
    sets = Settings(home=home).datasets_dir
    back = load_user_dataset(sets, "flagged")
    kept = CaseBook(sets).testset("cases")
    assert np.array_equal(back.X, kept.X) and back.y.tolist() == kept.y.tolist()
    cli(env, "cases", "remove", listed[0]["id"])
    assert [c["id"] for c in json.loads(cli(env, "cases", "list", "--json").stdout)] == [listed[1]["id"]]
    cli(env, "deployments", "delete", "cli-one")


GRADIO_LOG = Path(__file__).parent / "fixtures" / "gradio_flags"
"""What Gradio 6.31's own CSVLogger wrote (an Image and a Label component, flagging options, a username): the first
four MNIST test images flagged 7, 2, 1 and "Incorrect", saved as Gradio saves them (WebP, RGB)."""


def gradio_log(tmp_path, lines: slice = slice(None)) -> Path:
    """A copy of the log (its lines `lines` after the header) with the images beside it."""
    import shutil
    folder = tmp_path / "app"
    shutil.copytree(GRADIO_LOG, folder)
    log = folder / ".gradio" / "flagged" / "dataset1.csv"
    header, *rows = log.read_text().splitlines(keepends=True)
    log.write_text(header + "".join(rows[lines]))
    return log


def test_a_gradio_flagging_log_is_read_with_its_images_and_answers(tmp_path):
    from backend.data.flag_logs import read_flag_log

    flags = read_flag_log(gradio_log(tmp_path))
    assert [(f.row, f.flag, f.said, f.username) for f in flags] == [
        (2, "7", "7 (90%)", "tester"), (3, "2", "3 (60%)", "tester"), (4, "1", "1 (95%)", "tester"),
        (5, "Incorrect", "6 (70%)", "tester")]
    assert flags[1].note().startswith("flagged in Gradio: Gradio said 3 (60%); flag '2'; by tester; 2026-12-04")
    log = gradio_log(tmp_path / "b", slice(0, 1))
    (tmp_path / "b" / "outside.png").write_bytes(stroke_png())
    log.write_text(log.read_text().replace(".gradio/flagged/digit/f3996b861955253722dc/image.webp",
                                           "../../../outside.png"))
    with pytest.raises(CaseError, match=r"line 2: the image \.\./\.\./\.\./outside\.png is not in "):
        read_flag_log(log)  # there is such an image, outside the log's folder: never read
    (tmp_path / "c.csv").write_text("text,flag,timestamp\nhello,x,2026\n")
    with pytest.raises(CaseError, match="has no column of image files"):
        read_flag_log(tmp_path / "c.csv")


def test_the_cli_keeps_a_gradio_flagging_log_as_cases_all_or_none(cli_env, tmp_path):
    whole = gradio_log(tmp_path / "whole")
    refused = cli(cli_env, "cases", "add", "--from-flag", str(whole), "--dataset", "mnist", check=False)
    assert refused.returncode == 1 and "line 5 of dataset1.csv: its flag 'Incorrect' is not one of the classes" \
        in refused.stderr
    assert json.loads(cli(cli_env, "cases", "list", "--json").stdout) == []  # none kept: not half an import
    three = gradio_log(tmp_path / "three", slice(0, 3))
    added = json.loads(cli(cli_env, "cases", "add", "--from-flag", str(three), "--dataset", "mnist",
                           "--json").stdout)
    assert [c["label"] for c in added["cases"]] == ["7", "2", "1"] and added["known"] == 0
    assert {c["origin"] for c in added["cases"]} == {"gradio flag"}
    assert added["cases"][1]["note"].startswith("flagged in Gradio: Gradio said 3 (60%)")
    kept = CaseBook(Settings(home=Path(cli_env["MODELDECK_HOME"])).datasets_dir).testset("cases")
    mnist = load_mnist_test()
    assert np.abs(kept.X - mnist.X[:3]).mean(axis=1).max() < 0.02  # the digits, through Gradio's lossy WebP
    again = cli(cli_env, "cases", "add", "--from-flag", str(three), "--dataset", "mnist")
    assert "flagged 0 images" in again.stdout and "(3 flags kept already, left out)" in again.stdout
    labelled = cli(cli_env, "cases", "add", "--from-flag", str(whole), "--dataset", "mnist", "--label", "0")
    assert "flagged 4 images" in labelled.stdout  # --label holds for every image of the log
