"""User test sets: import from npz / IDX / zip, storage, catalogue, and every refusal saying what arrived."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data import limits
from backend.data.builtin import load_mnist_test
from backend.data.preprocess import mnist_input
from backend.data.store import dataset_sha256, import_dataset, load_user_dataset, remove_dataset, user_catalogue
from backend.errors import (
    DatasetError,
    DatasetExistsError,
    DatasetImportError,
    DatasetNotFoundError,
    IdxFormatError,
    InvalidDatasetNameError,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "home" / "datasets"


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08, compress: bool = False) -> Path:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def dark_on_light(side: int, seed: int) -> np.ndarray:
    """A light page (230) with a dark stroke (20): a bar whose position depends on `seed`."""
    pixels = np.full((side, side), 230, dtype=np.uint8)
    left = side // 4 + seed % 3
    pixels[side // 6: side - side // 6, left: left + max(2, side // 10)] = 20
    return pixels


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


# --- good inputs -----------------------------------------------------------------------------------------------

def test_npz_of_uint8_images_with_string_class_names_keeps_its_values_and_loads_back_exactly(root, tmp_path):
    X, y = images(30), np.arange(30) % 3
    names = np.array(["cat", "dog", "bird"])
    upload = write_npz(tmp_path / "pets.npz", X=X, y=y, class_names=names)

    info = import_dataset(root, "pets", [upload], title="My pets")

    assert (info.name, info.title, info.image_shape, info.class_names, info.installed, info.value_range) == (
        "pets", "My pets", (28, 28), ("cat", "dog", "bird"), True, (0.0, 255.0))
    test_set = load_user_dataset(root, "pets")
    assert test_set.X.dtype == np.float32 and test_set.X.shape == (30, 784)
    assert np.array_equal(test_set.X, X.reshape(30, 784).astype(np.float32))  # never divided by 255 unasked
    assert test_set.value_range == (0.0, 255.0) and test_set.pixels is None  # not the [0, 1] form's bytes
    assert test_set.y.dtype == np.int64 and test_set.y.tolist() == y.tolist()
    assert test_set.class_names == ("cat", "dog", "bird")
    assert test_set.source == "pets.npz: 30 images 28x28 in 3 classes; values in [0, 255] (read from the data)"
    meta = json.loads((root / "pets.json").read_text())
    assert (meta["x_dtype"], meta["x_scale"], meta["value_range"]) == ("uint8", 1, [0, 255])


def test_float_rows_npz_gets_a_square_shape_and_digit_names_and_stays_float(root, tmp_path):
    X = np.random.default_rng(1).random((12, 64)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    info = import_dataset(root, "eights", [write_npz(tmp_path / "rows.npz", X=X, y=y)])

    assert info.image_shape == (8, 8) and info.class_names == tuple(str(i) for i in range(10))
    assert info.title == "eights"  # the name stands in for a missing title
    assert json.loads((root / "eights.json").read_text())["x_dtype"] == "float32"
    assert np.array_equal(load_user_dataset(root, "eights").X, X)


def test_whole_float_pixels_up_to_255_are_kept_and_stored_as_bytes(root, tmp_path):
    X = images(5).astype(np.float64)
    info = import_dataset(root, "floats", [write_npz(tmp_path / "f.npz", X=X, y=np.zeros(5, dtype=int))])

    assert info.value_range == (0.0, 255.0)  # the highest value, 255
    assert json.loads((root / "floats.json").read_text())["x_dtype"] == "uint8"
    assert np.array_equal(load_user_dataset(root, "floats").X, X.astype(np.float32).reshape(5, 784))


def test_the_value_range_is_read_from_the_data_or_taken_as_declared(root, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()  # 8x8, whole numbers 0 to 16 as float64
    upload = write_npz(tmp_path / "d.npz", X=digits.data[:100], y=digits.target[:100])
    read = import_dataset(root, "read", [upload])
    declared = import_dataset(root, "declared", [upload], value_range=(0, 20))

    assert (read.value_range, read.image_shape) == ((0.0, 16.0), (8, 8))
    assert declared.value_range == (0.0, 20.0)
    for name in ("read", "declared"):
        loaded = load_user_dataset(root, name)
        assert np.array_equal(loaded.X, digits.data[:100].astype(np.float32))  # as they are, bit for bit
        assert user_catalogue(root)[0].value_range in ((0.0, 16.0), (0.0, 20.0))
    assert load_user_dataset(root, "declared").value_range == (0.0, 20.0)
    assert "values in [0, 16] (read from the data)" in load_user_dataset(root, "read").source
    odd = write_npz(tmp_path / "o.npz", X=np.array([[-0.5, 2.25, 0, 0]]), y=np.array([0]))
    assert import_dataset(root, "odd", [odd]).value_range == (-1.0, 3.0)  # outward to whole numbers


def test_values_outside_a_declared_range_are_refused(root, tmp_path):
    upload = write_npz(tmp_path / "d.npz", X=np.full((2, 64), 17.0), y=np.arange(2))
    with pytest.raises(DatasetImportError, match=r"X values run from 17 to 17, outside the range declared, \[0, 16\]"):
        import_dataset(root, "over", [upload], value_range=(0, 16))


def test_a_rescale_happens_only_when_asked_and_maps_the_range(root, tmp_path):
    X = images(3)
    upload = write_npz(tmp_path / "u.npz", X=X, y=np.arange(3))
    info = import_dataset(root, "scaled", [upload], rescale_to=(0, 1))

    assert info.value_range == (0.0, 1.0)
    loaded = load_user_dataset(root, "scaled")
    assert np.array_equal(loaded.X, X.reshape(3, 784).astype(np.float32) / np.float32(255.0))  # MNIST's floats
    assert loaded.pixels is not None  # the fast 8-bit path again
    assert "rescaled to [0, 1] as asked" in loaded.source
    sixteen = import_dataset(root, "sixteen", [write_npz(tmp_path / "s.npz", X=np.array([[0.0, 4, 8, 16]]),
                                                         y=np.array([0]))], value_range=(0, 16), rescale_to=(0, 1))
    assert sixteen.value_range == (0.0, 1.0)
    assert load_user_dataset(root, "sixteen").X.tolist() == [[0.0, 0.25, 0.5, 1.0]]


def test_rows_that_are_not_square_take_a_declared_image_shape(root, tmp_path):
    X = np.arange(2 * 24, dtype=np.float32).reshape(2, 24) / 47
    info = import_dataset(root, "wide", [write_npz(tmp_path / "w.npz", X=X, y=np.arange(2))], image_shape=(4, 6))
    assert info.image_shape == (4, 6) and load_user_dataset(root, "wide").image_shape == (4, 6)
    tall = import_dataset(root, "tall", [write_npz(tmp_path / "t.npz", X=X.reshape(2, 6, 4), y=np.arange(2))])
    assert tall.image_shape == (6, 4)
    with pytest.raises(DatasetImportError, match="not the 5x5 = 25 of the image shape declared"):
        import_dataset(root, "wrong", [write_npz(tmp_path / "x.npz", X=X, y=np.arange(2))], image_shape=(5, 5))


def test_a_set_stored_before_value_ranges_loads_in_the_unit_range(root, tmp_path):
    import_dataset(root, "old", [write_npz(tmp_path / "o.npz", X=images(2), y=np.arange(2))], rescale_to=(0, 1))
    meta_path = root / "old.json"
    meta = json.loads(meta_path.read_text())
    for key in ("value_range", "x_scale"):
        del meta[key]
    meta["format"] = 1
    meta_path.write_text(json.dumps(meta))

    loaded = load_user_dataset(root, "old")
    assert loaded.value_range == (0.0, 1.0) and float(loaded.X.max()) <= 1.0


def test_string_labels_become_indices_of_naturally_sorted_names(root, tmp_path):
    y = np.array(["10", "2", "1", "2", "10"])
    import_dataset(root, "strings", [write_npz(tmp_path / "s.npz", X=images(5), y=y)])

    test_set = load_user_dataset(root, "strings")
    assert test_set.class_names == ("1", "2", "10")
    assert test_set.y.tolist() == [2, 1, 0, 1, 2]


def test_string_labels_map_onto_given_class_names(root, tmp_path):
    upload = write_npz(tmp_path / "s.npz", X=images(3), y=np.array(["b", "a", "b"]), class_names=np.array(["b", "a"]))
    import_dataset(root, "given", [upload])
    assert load_user_dataset(root, "given").y.tolist() == [0, 1, 0]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("labels_first", [False, True])
def test_idx_pair_imports_gzipped_or_not_in_either_order(root, tmp_path, compress, labels_first):
    X, y = images(7), np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    pixels = write_idx(tmp_path / "imgs-idx3-ubyte", X, compress=compress)
    labels = write_idx(tmp_path / "labels-idx1-ubyte", y, compress=compress)

    info = import_dataset(root, "idx_pair", [labels, pixels] if labels_first else [pixels, labels])

    assert info.image_shape == (28, 28) and info.class_names == tuple(str(i) for i in range(10))
    test_set = load_user_dataset(root, "idx_pair")
    assert np.array_equal(test_set.X, X.reshape(7, 784).astype(np.float32) / np.float32(255.0))
    assert test_set.y.tolist() == y.tolist()
    assert test_set.source.startswith("imgs-idx3-ubyte + labels-idx1-ubyte: 7 images 28x28")


def test_zip_of_28x28_dark_on_light_pngs_is_inverted_and_taken_as_it_is(root, tmp_path):
    drawings = {f"{digit}/{i}.png": dark_on_light(28, i) for digit in ("0", "1") for i in range(3)}
    upload = write_zip(tmp_path / "my_digits.zip", {name: png(p) for name, p in drawings.items()})

    info = import_dataset(root, "my-digits", [upload])

    assert info.image_shape == (28, 28) and info.class_names == ("0", "1")
    test_set = load_user_dataset(root, "my-digits")
    expected = np.stack([(255 - p).reshape(-1) for p in drawings.values()]).astype(np.float32) / np.float32(255.0)
    assert np.array_equal(test_set.X, expected)  # ink bright on black, pixel for pixel
    assert test_set.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert test_set.source == ("my_digits.zip: 6 images in 2 folders (28x28 taken as they are; "
                               "6 light-background images inverted)")


def test_zip_of_larger_images_goes_through_mnist_input(root, tmp_path):
    files = {"a/x.png": png(dark_on_light(100, 0)), "b/y.png": png(dark_on_light(60, 1)),
             "b/z.png": png(255 - dark_on_light(28, 2))}  # one light-on-dark, already 28x28: resized too
    import_dataset(root, "photos", [write_zip(tmp_path / "photos.zip", files)])

    test_set = load_user_dataset(root, "photos")
    expected = np.stack([mnist_input(data).row for data in files.values()])
    assert np.array_equal(test_set.X, expected)
    assert test_set.y.tolist() == [0, 1, 1]
    assert "resized to MNIST's 28x28 form by preprocess.mnist_input; 2 light-background images inverted" in (
        test_set.source)


def test_zip_classes_sort_naturally_top_folder_is_stripped_and_clutter_ignored(root, tmp_path):
    entries = {f"digits/{folder}/{i}.png": png(dark_on_light(28, i)) for folder in ("10", "2", "1") for i in range(2)}
    entries |= {"digits/": b"", "digits/2/": b"", "__MACOSX/digits/2/._0.png": b"junk",
                "digits/.DS_Store": b"junk", "digits/2/.hidden.png": b"junk", "digits/README.txt": b"hello"}
    info = import_dataset(root, "natural", [write_zip(tmp_path / "d.zip", entries)])

    assert info.class_names == ("1", "2", "10")
    test_set = load_user_dataset(root, "natural")
    assert test_set.y.tolist() == [2, 2, 1, 1, 0, 0]
    assert test_set.source.endswith("; 1 other file ignored")


def test_zip_of_28x28_canvas_drawings_with_transparency_reads_transparent_as_background(root, tmp_path):
    canvas = np.zeros((28, 28, 4), dtype=np.uint8)
    canvas[5:23, 12:15] = (0, 0, 0, 255)  # black strokes on a transparent canvas
    buffer = io.BytesIO()
    Image.fromarray(canvas, mode="RGBA").save(buffer, format="PNG")
    import_dataset(root, "canvas", [write_zip(tmp_path / "c.zip", {"7/a.png": buffer.getvalue()})])

    test_set = load_user_dataset(root, "canvas")
    assert np.array_equal(test_set.X[0].reshape(28, 28), (canvas[..., 3] == 255).astype(np.float32))
    assert test_set.source == "c.zip: 1 image in 1 folder (28x28 taken as they are; 1 light-background image inverted)"


# --- storage, catalogue, removal ---------------------------------------------------------------------------------

def test_stored_files_are_private_and_the_metadata_records_the_checksum(root, tmp_path):
    import_dataset(root, "private", [write_npz(tmp_path / "p.npz", X=images(4), y=np.arange(4))], title="  Two\nlines ")

    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert sorted(p.name for p in root.iterdir()) == ["private.json", "private.npz"]  # no temporary files left
    for path in root.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    meta = json.loads((root / "private.json").read_text())
    digest = hashlib.sha256((root / "private.npz").read_bytes()).hexdigest()
    assert meta["sha256"] == digest == dataset_sha256(root, "private")
    assert (meta["title"], meta["n"], meta["image_shape"], meta["class_names"]) == ("Two lines", 4, [28, 28],
                                                                                   ["0", "1", "2", "3"])
    assert meta["created_at"].endswith("+00:00")
    with np.load(root / "private.npz", allow_pickle=False) as npz:
        assert npz["X"].dtype == np.uint8 and npz["X"].shape == (4, 784)


def test_catalogue_lists_stored_sets_and_removal_forgets_them(root, tmp_path):
    assert user_catalogue(root) == []  # no folder yet
    upload = write_npz(tmp_path / "u.npz", X=images(2), y=np.array([0, 1]))
    import_dataset(root, "set_b", [upload], title="Set B")
    import_dataset(root, "set-a", [upload])
    (root / "broken.json").write_text("{not json")
    (root / "broken.npz").write_bytes(b"")

    assert [(i.name, i.title, i.installed) for i in user_catalogue(root)] == [("set-a", "set-a", True),
                                                                            ("set_b", "Set B", True)]
    remove_dataset(root, "set-a")
    assert [i.name for i in user_catalogue(root)] == ["set_b"]
    with pytest.raises(DatasetNotFoundError, match=r"no user test set named 'set-a': the stored ones are set_b "
                                                   r"\(built in: mnist, digits, fashion-mnist, breast-cancer\)"):
        load_user_dataset(root, "set-a")
    with pytest.raises(DatasetNotFoundError):
        remove_dataset(root, "set-a")


def test_a_changed_data_file_is_refused_on_load(root, tmp_path):
    import_dataset(root, "tamper", [write_npz(tmp_path / "t.npz", X=images(2), y=np.array([0, 1]))])
    write_npz(root / "tamper.npz", X=np.zeros((2, 784), dtype=np.uint8), y=np.array([1, 1]),
              class_names=np.array(["0", "1"]))
    with pytest.raises(DatasetError, match="changed since it was imported"):
        load_user_dataset(root, "tamper")
    with pytest.raises(DatasetError, match="changed since it was imported"):
        dataset_sha256(root, "tamper")


def test_an_existing_name_is_refused_unless_replaced(root, tmp_path):
    first = write_npz(tmp_path / "a.npz", X=images(2), y=np.array([0, 1]))
    second = write_npz(tmp_path / "b.npz", X=images(3, seed=2), y=np.array([1, 0, 1]))
    import_dataset(root, "twice", [first])

    with pytest.raises(DatasetExistsError, match="a test set named 'twice' exists already"):
        import_dataset(root, "twice", [second])
    assert len(load_user_dataset(root, "twice")) == 2
    import_dataset(root, "twice", [second], replace=True)
    assert len(load_user_dataset(root, "twice")) == 3


@pytest.mark.parametrize("name", ["mnist", "digits", "fashion-mnist"])
def test_built_in_names_are_refused(root, tmp_path, name):
    with pytest.raises(InvalidDatasetNameError, match=f"'{name}' is a built-in set's"):
        import_dataset(root, name, [write_npz(tmp_path / "a.npz", X=images(1), y=np.array([0]))])


@pytest.mark.parametrize("name", ["ab", "My-Set", "-abc", "abc_", "a b c", "x" * 64, "../etc", ""])
def test_bad_names_are_refused_with_the_rule(root, tmp_path, name):
    with pytest.raises(InvalidDatasetNameError, match="use 3 to 63 lowercase letters, digits, '-' and '_'"):
        import_dataset(root, name, [write_npz(tmp_path / "a.npz", X=images(1), y=np.array([0]))])
    assert not root.exists()


# --- broken inputs -------------------------------------------------------------------------------------------------

def refused(root: Path, files: list[Path], match: str) -> None:
    with pytest.raises(DatasetImportError, match=match):
        import_dataset(root, "broken", files)
    assert user_catalogue(root) == []


def test_a_text_file_renamed_npz_is_refused(root, tmp_path):
    (tmp_path / "notes.npz").write_text("just some notes\n")
    refused(root, [tmp_path / "notes.npz"], r"notes.npz is not an .npz file \(it starts with b'just som'\)")


def test_an_npz_of_a_zip_of_other_things_is_refused(root, tmp_path):
    write_zip(tmp_path / "fake.npz", {"hello.txt": b"hi"})
    refused(root, [tmp_path / "fake.npz"], "fake.npz holds hello.txt; a test set needs arrays X .*: X and y missing")


def test_an_npz_without_y_says_what_it_holds(root, tmp_path):
    upload = write_npz(tmp_path / "x_only.npz", X=images(2), labels=np.array([0, 1]))
    refused(root, [upload], r"x_only.npz holds X, labels; a test set needs arrays X \(images\) and y .*: y missing")


def test_object_arrays_are_never_unpickled(root, tmp_path):
    np.savez(tmp_path / "obj.npz", X=images(2), y=np.array([0, {"a": 1}], dtype=object))
    refused(root, [tmp_path / "obj.npz"], "obj.npz holds object arrays, .* never unpickled")


def test_mismatched_lengths_are_refused(root, tmp_path):
    refused(root, [write_npz(tmp_path / "m.npz", X=images(5), y=np.arange(4))],
            "m.npz: X holds 5 images but y holds 4 labels")


def test_labels_outside_the_class_names_are_refused(root, tmp_path):
    upload = write_npz(tmp_path / "r.npz", X=images(3), y=np.array([0, 1, 2]), class_names=np.array(["a", "b"]))
    refused(root, [upload], r"r.npz: label 2 is outside the 2 class_names \(a, b\): labels must be 0 to 1")


def test_negative_and_fractional_labels_are_refused(root, tmp_path):
    refused(root, [write_npz(tmp_path / "n.npz", X=images(2), y=np.array([-1, 0]))], "class indices start at 0")
    refused(root, [write_npz(tmp_path / "f.npz", X=images(2), y=np.array([0.5, 1.0]))], "not whole numbers")


def test_nan_pixels_are_refused(root, tmp_path):
    X = np.zeros((3, 784), dtype=np.float32)
    X[2, 10] = np.nan
    refused(root, [write_npz(tmp_path / "nan.npz", X=X, y=np.arange(3))],
            r"nan.npz: X holds 1 NaN or infinite values \(the first in image 2\)")


def test_values_beyond_float32_are_refused(root, tmp_path):
    X = np.full((2, 784), 1e300)
    refused(root, [write_npz(tmp_path / "big.npz", X=X, y=np.arange(2))], "NaN or infinite values")


def test_non_square_rows_are_refused(root, tmp_path):
    refused(root, [write_npz(tmp_path / "rows.npz", X=np.zeros((2, 10)), y=np.arange(2))],
            r"rows.npz: X has rows of 10 values, which is not a square image; .* declare the image shape "
            r"\(the Image shape field, or --image-shape HEIGHTxWIDTH\)")


def test_the_image_shape_is_read_by_one_function_for_the_cli_and_the_page():
    from backend.errors import RegistryError
    from backend.registry import parse_image_shape

    assert parse_image_shape("5x6") == (5, 6) and parse_image_shape(" 1 × 30 ") == (1, 30)
    assert parse_image_shape("") is None
    for bad in ("30", "5x", "0x30", "five by six"):
        with pytest.raises(RegistryError, match="is not valid: give HEIGHTxWIDTH"):
            parse_image_shape(bad)


def test_an_empty_set_and_too_many_values_per_row_are_refused(root, tmp_path):
    refused(root, [write_npz(tmp_path / "e.npz", X=np.zeros((0, 28, 28)), y=np.zeros(0))], "X holds no images")
    refused(root, [write_npz(tmp_path / "w.npz", X=np.zeros((1, 100, 100)), y=np.zeros(1))],
            "images of 100x100 pixels; they must have 1 to 4,096 pixels")


def test_an_idx_pair_of_two_label_files_is_refused(root, tmp_path):
    a = write_idx(tmp_path / "a-idx1", np.array([1, 2], dtype=np.uint8))
    b = write_idx(tmp_path / "b-idx1", np.array([1, 2], dtype=np.uint8))
    refused(root, [a, b], r"cannot tell images from labels: a-idx1 holds \(2\) and b-idx1 \(2\)")


def test_a_garbage_idx_file_is_refused_with_its_name(root, tmp_path):
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8bnot really gzip")
    labels = write_idx(tmp_path / "l-idx1", np.array([1], dtype=np.uint8))
    refused(root, [tmp_path / "junk.gz", labels], "cannot read junk.gz: it is not a valid gzip file")
    (tmp_path / "junk.idx").write_bytes(b"PK\x03\x04 zip")
    with pytest.raises(IdxFormatError, match="junk.idx is not an IDX file"):
        import_dataset(root, "broken", [tmp_path / "junk.idx", labels])


def test_two_npz_files_are_not_read_as_an_idx_pair(root, tmp_path):
    """What a second upload joined to a first one made: said in words, no staging path, no magic in hex."""
    first = write_npz(tmp_path / "digits8.npz", X=np.zeros((2, 8, 8)), y=np.arange(2))
    second = write_npz(tmp_path / "digits8-flat.npz", X=np.zeros((2, 64)), y=np.arange(2))
    with pytest.raises(DatasetImportError) as refusal:
        import_dataset(root, "two", [second, first])
    assert str(refusal.value) == ("digits8-flat.npz is given with digits8.npz: give one .npz alone, or two IDX files, "
                                  "images and labels (MNIST's format, gzip'd or not)")
    labels = write_idx(tmp_path / "l-idx1", np.array([1, 0], dtype=np.uint8))
    refused(root, [labels, tmp_path / "digits8.npz"], "^digits8.npz is given with l-idx1")


def test_unknown_file_combinations_are_refused(root, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    refused(root, [tmp_path / "a.txt"], "cannot import a.txt: give one .npz")
    refused(root, [], "cannot import no file")
    refused(root, [tmp_path / "missing.npz"], "cannot read missing.npz: No such file")


def test_a_zip_with_a_path_leaving_its_folder_is_refused(root, tmp_path):
    upload = write_zip(tmp_path / "evil.zip", {"0/a.png": png(dark_on_light(28, 0)), "../evil.png": b"x"})
    refused(root, [upload], r"evil.zip holds '../evil.png', a path outside the archive's folder: refused")


def test_an_empty_zip_is_refused(root, tmp_path):
    refused(root, [write_zip(tmp_path / "empty.zip", {})], r"empty.zip holds no PNG or JPEG images \(it is empty\)")


def test_a_corrupt_zip_and_a_corrupt_image_are_refused_with_their_names(root, tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken archive")
    refused(root, [tmp_path / "bad.zip"], "cannot read bad.zip as a zip archive")
    upload = write_zip(tmp_path / "img.zip", {"0/a.png": png(dark_on_light(28, 0)), "0/b.png": b"not a png"})
    refused(root, [upload], "img.zip: 0/b.png is not an image that can be read")


def test_a_zip_of_tiny_images_of_mixed_sizes_is_refused(root, tmp_path):
    upload = write_zip(tmp_path / "tiny.zip", {"0/a.png": png(dark_on_light(8, 0)), "1/b.png": png(dark_on_light(12, 1))})
    refused(root, [upload], "tiny.zip: 0/a.png is 8x8, too small to resize into MNIST's form")


def test_images_outside_class_folders_are_refused(root, tmp_path):
    upload = write_zip(tmp_path / "flat.zip", {"a.png": png(dark_on_light(28, 0)), "0/b.png": png(dark_on_light(28, 1))})
    refused(root, [upload], "flat.zip: a.png is not directly in a class folder")


def test_a_blank_image_that_needs_resizing_is_refused(root, tmp_path):
    upload = write_zip(tmp_path / "blank.zip", {"0/a.png": png(np.full((50, 50), 255))})
    refused(root, [upload], "blank.zip: 0/a.png: nothing drawn")


def test_zip_bombs_are_refused_by_unpacked_size_and_by_count(root, tmp_path, monkeypatch):
    upload = tmp_path / "bomb.zip"
    with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(3):
            archive.writestr(f"0/{i}.png", bytes(4_000))
    assert upload.stat().st_size < 1_000
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 10_000)
    refused(root, [upload], "bomb.zip unpacks to 12,000 bytes: the limit is 10,000 bytes")
    monkeypatch.setattr(limits, "MAX_ZIP_FILES", 2)
    refused(root, [upload], "bomb.zip holds 3 files: the limit is 2")


def test_a_gzipped_idx_file_that_unpacks_past_the_cap_is_refused(root, tmp_path, monkeypatch):
    images_file = write_idx(tmp_path / "big-idx3.gz", np.zeros((20, 28, 28), dtype=np.uint8), compress=True)
    labels = write_idx(tmp_path / "l-idx1", np.zeros(20, dtype=np.uint8))
    monkeypatch.setattr(limits, "MAX_UNPACKED_BYTES", 10_000)
    refused(root, [images_file, labels], "big-idx3.gz unpacks to more than 10,000 bytes: refused")


# --- the real MNIST test set ---------------------------------------------------------------------------------------

def test_the_first_500_mnist_digits_round_trip_exactly(root, tmp_path):
    mnist = load_mnist_test()
    upload = write_npz(tmp_path / "mnist500.npz", X=mnist.X[:500], y=mnist.y[:500])

    import_dataset(root, "mnist-500", [upload], title="First 500 of MNIST")

    test_set = load_user_dataset(root, "mnist-500")
    assert test_set.X.dtype == mnist.X.dtype and np.array_equal(test_set.X, mnist.X[:500])
    assert np.array_equal(test_set.y, mnist.y[:500])
    assert test_set.image_shape == (28, 28) and test_set.class_names == mnist.class_names
    assert json.loads((root / "mnist-500.json").read_text())["x_dtype"] == "uint8"  # 8-bit data, 8-bit storage


def test_uploaded_bytes_are_staged_privately_imported_and_the_staging_left_empty(tmp_path):
    import io

    from backend.data.store import import_uploaded
    from backend.errors import DatasetImportError

    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((3, 28, 28), np.uint8), y=np.array([0, 1, 1]))
    info = import_uploaded(tmp_path / "sets", "uploaded", {"../x/sets.npz": buffer.getvalue()}, "t", tmp_path / "staging")
    assert info.name == "uploaded" and info.title == "t"
    assert list((tmp_path / "staging").iterdir()) == []
    with pytest.raises(DatasetImportError, match="nothing to add"):
        import_uploaded(tmp_path / "sets", "empty", {}, "", tmp_path / "staging")
