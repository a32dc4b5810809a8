import gzip
import struct

import numpy as np
import pytest

from backend.data import builtin
from backend.data.builtin import FASHION_CLASSES, load_fashion_mnist_train, load_mnist_test
from backend.data.catalogue import load_dataset, sets_fitting
from backend.data.idx import load_idx_pair, read_idx
from backend.errors import DatasetError, IdxFormatError, TrainingError
from backend.registry import Signature
from backend.training import SampleSpec, sample_spec, train_sample


def write_idx(path, array: np.ndarray, type_code: int = 0x08, compress: bool = False) -> None:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_reads_plain_and_gzip_files(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.idx", images, compress=compress)
    assert np.array_equal(read_idx(tmp_path / "x.idx"), images)


def test_read_idx_reads_big_endian_ints(tmp_path):
    values = np.array([1, -2, 300000], dtype=np.int32)
    write_idx(tmp_path / "x.idx", values, type_code=0x0C)
    assert read_idx(tmp_path / "x.idx").tolist() == [1, -2, 300000]


def test_truncated_idx_file_says_how_many_bytes_are_missing(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((10, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "x.idx").write_bytes(raw[:-100])
    with pytest.raises(IdxFormatError, match=r"truncated: its header says 10x28x28 values \(7840 bytes\) but only 7740"):
        read_idx(tmp_path / "x.idx")


def test_wrong_magic_is_refused(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(IdxFormatError, match=r"^x.idx is not an IDX file \(it is a zip archive, as an .npz is\): "
                       "an IDX file starts with two zero bytes"):  # named without its folder, in words
        read_idx(tmp_path / "x.idx")


def test_unknown_type_code_is_refused(tmp_path):
    (tmp_path / "x.idx").write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(IdxFormatError, match="unknown IDX type code 0x42"):
        read_idx(tmp_path / "x.idx")


def test_images_and_labels_must_agree_on_count(tmp_path):
    write_idx(tmp_path / "i.idx", np.zeros((3, 2, 2), dtype=np.uint8))
    write_idx(tmp_path / "l.idx", np.zeros(4, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match="has 3 images but .* has 4 labels"):
        load_idx_pair(tmp_path / "i.idx", tmp_path / "l.idx", name="t")


def test_idx_pair_scales_pixels_to_unit_range(tmp_path):
    write_idx(tmp_path / "i.idx", np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    write_idx(tmp_path / "l.idx", np.array([3], dtype=np.uint8))
    testset = load_idx_pair(tmp_path / "i.idx", tmp_path / "l.idx", name="t")
    assert testset.X.dtype == np.float32 and testset.X.shape == (1, 4)
    assert np.allclose(testset.X[0], [0.0, 1.0, 0.2, 0.4])
    assert testset.image_shape == (2, 2) and testset.y.tolist() == [3]


def test_bundled_mnist_test_set_is_the_real_10k_set():
    mnist = load_mnist_test()
    assert mnist.X.shape == (10000, 784) and mnist.image_shape == (28, 28)
    assert 0.0 <= mnist.X.min() and mnist.X.max() == 1.0
    assert mnist.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(mnist.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digits_dataset_loads_with_8x8_images():
    digits = load_dataset("digits")
    assert digits.X.shape == (1797, 64) and digits.image_shape == (8, 8) and digits.X.max() <= 1.0


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="choose one of mnist, digits"):
        load_dataset("cifar")


def test_the_fashion_training_subset_is_the_first_images_of_the_real_training_set():
    subset = load_fashion_mnist_train(1000)
    assert subset.X.shape == (1000, 784) and subset.class_names == FASHION_CLASSES
    assert subset.X.dtype == np.float32 and 0.0 <= subset.X.min() and subset.X.max() <= 1.0
    assert sorted(set(subset.y.tolist())) == list(range(10)) and "the first 1,000 of" in subset.source


def test_fashion_mnist_missing_says_which_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    for load in (builtin.load_fashion_mnist_test, lambda: builtin.load_fashion_mnist_train(10)):
        with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
            load()
    with pytest.raises(TrainingError, match="no sample model for dataset 'cifar': choose one of mnist, fashion-mnist"):
        train_sample(None, "cifar")  # refused before the registry is touched


def test_a_model_with_named_labels_fits_the_set_with_those_names_in_any_order():
    fashion = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0),
                        class_labels=tuple(sorted(FASHION_CLASSES)))  # scikit-learn's order
    fit = sets_fitting(fashion)
    fitting, hidden = fit.fitting, fit.hidden
    assert [d.name for d in fitting] == ["fashion-mnist"]
    assert "its classes are 0, 1, 2, ...; the model's are Ankle boot, Bag, Coat, ..." in dict(
        (d.name, why) for d, why in hidden)["mnist"]
    reordered = Signature(n_features=784, class_labels=("1", "0", "2", "3", "4", "5", "6", "7", "8", "9"))
    assert "mnist" in [d.name for d in sets_fitting(reordered).fitting]
    nine_names = Signature(n_features=784, class_labels=tuple(sorted(FASHION_CLASSES))[:9] + ("Hat",))
    assert "fashion-mnist" not in [d.name for d in sets_fitting(nine_names).fitting]


def test_sample_specs_default_to_each_datasets_own_algorithm():
    assert sample_spec() == SampleSpec("mnist", "logistic") and sample_spec("mnist", "svc").model_name == "sklearn_mnist"
    assert sample_spec("fashion-mnist") == SampleSpec("fashion-mnist", "svc")
    assert sample_spec("fashion-mnist").model_name == "sklearn_fashion"
    with pytest.raises(TrainingError, match="unknown algorithm 'forest': choose one of logistic, svc"):
        sample_spec("mnist", "forest")


def test_a_set_made_of_8_bit_pixels_knows_them_and_any_other_set_does_not():
    from backend.data.builtin import load_digits_set
    from backend.data.testset import TestSet
    from backend.inspection.perturb import Perturbation

    mnist = load_mnist_test()
    assert mnist.pixels.dtype == np.uint8 and np.array_equal(mnist.pixels.astype(np.float32) / np.float32(255), mnist.X)
    # the same floats without the loader's bytes: found by the check, bit for bit
    rebuilt = TestSet("copy", mnist.X.copy(), mnist.y, mnist.image_shape, mnist.class_names, "")
    assert np.array_equal(rebuilt.pixels, mnist.pixels)
    assert load_digits_set().pixels is None  # sixteenths, not bytes
    assert Perturbation("noise", 0.2).apply(mnist).pixels is None  # a perturbed set is not the loader's bytes
    odd = np.array([[0.5, np.nan], [1.5, -0.1], [0.25, 1.0]], dtype=np.float32)
    for row in odd:
        assert TestSet("odd", row[None, :], np.zeros(1, dtype=np.int64), (1, 2), ("0",), "").pixels is None
