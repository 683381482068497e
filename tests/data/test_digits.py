"""Images as sequences: the three orders against per-pixel Python loops, the digits split, and
the MNIST loader on tiny .npz files written here (good, missing, malformed)."""

import numpy as np
import pytest

from rnn_jax.data import digits


def images(n=3, height=4, width=5):
    return np.arange(n * height * width, dtype=np.float32).reshape(n, height, width) / 100


def test_orders_read_the_pixels_in_the_stated_order(key):
    imgs = images()
    pixel = digits.to_sequences(imgs, "pixel")
    row = digits.to_sequences(imgs, "row")
    order = digits.permutation(key, 20)
    permuted = digits.to_sequences(imgs, "permuted", order)
    assert pixel.shape == permuted.shape == (3, 20, 1) and row.shape == (3, 4, 5)
    for n in range(3):
        raster = [imgs[n, i, j] for i in range(4) for j in range(5)]  # row after row
        assert pixel[n, :, 0].tolist() == raster
        assert [row[n, t].tolist() for t in range(4)] == [imgs[n, t].tolist() for t in range(4)]
        assert permuted[n, :, 0].tolist() == [raster[p] for p in order]
    assert sorted(order.tolist()) == list(range(20)) and order.tolist() != list(range(20))
    np.testing.assert_array_equal(order, digits.permutation(key, 20))  # fixed by the key


@pytest.mark.parametrize("args, match", [
    ((images(), "spiral"), r"expected order in \('pixel', 'row', 'permuted'\), received 'spiral'"),
    ((images(), "permuted"), "expected pixel_order a permutation of 20 pixels, received None"),
    ((images(), "permuted", np.zeros(20, int)), "expected pixel_order a permutation of 20"),
    ((images()[0], "pixel"), r"expected images \[n, height, width\], received shape \(4, 5\)"),
])
def test_bad_orders_raise(args, match):
    with pytest.raises(ValueError, match=match):
        digits.to_sequences(*args)


def test_digits_split_is_disjoint_scaled_and_fixed_by_its_key(key):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    data = digits.load_digits(key, 0.2)
    assert data.train_images.shape == (1438, 8, 8) and data.test_images.shape == (359, 8, 8)
    assert data.train_images.dtype == np.float32 and data.train_labels.dtype == np.int32
    reference = load_digits()
    # every image of the split is one of the originals / 16, with its label, each used once
    index = {img.tobytes(): i for i, img in enumerate((reference.images / 16).astype(np.float32))}
    used = [index[img.tobytes()] for img in np.concatenate([data.train_images, data.test_images])]
    assert sorted(used) == list(range(1797))
    labels = np.concatenate([data.train_labels, data.test_labels])
    np.testing.assert_array_equal(labels, reference.target[used])
    again = digits.load_digits(key, 0.2)
    np.testing.assert_array_equal(again.test_labels, data.test_labels)
    with pytest.raises(ValueError, match=r"expected test_fraction in \(0, 1\), received 1.0"):
        digits.load_digits(key, 1.0)


def write(path, **arrays):
    np.savez(path, **arrays)
    return path


def mnist_arrays(rng, n_train=6, n_test=4):
    return dict(x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
                y_train=rng.integers(0, 10, n_train), x_test=rng.integers(0, 256, (n_test, 28, 28),
                                                                            dtype=np.uint8),
                y_test=rng.integers(0, 10, n_test))


def test_mnist_loader_reads_a_tiny_file(tmp_path):
    arrays = mnist_arrays(np.random.default_rng(0))
    data = digits.load_mnist(write(tmp_path / "mnist.npz", **arrays))
    np.testing.assert_allclose(data.train_images, arrays["x_train"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(data.test_images, arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.train_labels, arrays["y_train"])
    assert data.train_labels.dtype == np.int32 and data.test_images.dtype == np.float32
    assert digits.to_sequences(data.train_images, "pixel").shape == (6, 784, 1)


def malformed(name, rng):
    arrays = mnist_arrays(rng)
    if name == "missing key":
        del arrays["y_test"]
    elif name == "flat images":
        arrays["x_train"] = arrays["x_train"].reshape(6, 784)
    elif name == "label count":
        arrays["y_train"] = arrays["y_train"][:5]
    elif name == "label range":
        arrays["y_test"] = arrays["y_test"] + 10
    elif name == "float pixels":
        arrays["x_train"] = arrays["x_train"].astype(np.float32)  # 0..255, not scaled
    elif name == "image size":
        arrays["x_test"] = arrays["x_test"][:, :20]
    return arrays


@pytest.mark.parametrize("name, match", [
    ("missing key", r"expected arrays x_train, y_train, x_test, y_test, received arrays "
                    r"\['x_test', 'x_train', 'y_train'\] \(missing y_test\)"),
    ("flat images", r"expected x_train of shape \[n, height, width\].*received shape \(6, 784\)"),
    ("label count", r"expected y_train of shape \(6,\) \(one label per image\), received shape "
                    r"\(5,\)"),
    ("label range", "expected y_test integer labels in 0..9, received dtype int64, values 1"),
    ("float pixels", r"expected x_train uint8 pixels, or floats in \[0, 1\], received values 0"),
    ("image size", r"expected x_test images of x_train's size \(28, 28\), received \(20, 28\)"),
])
def test_malformed_mnist_files_raise(name, match, tmp_path):
    path = write(tmp_path / "bad.npz", **malformed(name, np.random.default_rng(1)))
    with pytest.raises(ValueError, match=match):
        digits.load_mnist(path)


def test_missing_or_unreadable_mnist_files_raise(tmp_path):
    with pytest.raises(ValueError, match=r"nope.npz: expected an existing .npz file .*received "
                                         "no such file"):
        digits.load_mnist(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not a zip archive")
    with pytest.raises(ValueError, match="expected a NumPy .npz archive, received a file NumPy "
                                         "cannot read as one"):
        digits.load_mnist(tmp_path / "text.npz")
