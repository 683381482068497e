"""Images read as sequences ("sequential processing of non-sequence data"): scikit-learn's 8x8
handwritten digits and a user-supplied MNIST `.npz`.

Orders (`to_sequences`): 'pixel' reads one pixel per step in raster order (64 steps for 8x8,
784 for MNIST: the sequential-MNIST task of Le, Jaitly & Hinton 2015, the IRNN paper); 'row'
reads one row of pixels per step (8 or 28 steps); 'permuted' reads pixels one per step in one
fixed random order, the same for every image (the permuted task of the IRNN and uRNN papers,
Arjovsky, Shah & Bengio 2016), which spreads neighbouring pixels far apart in time.

The digits ship with scikit-learn (1,797 images, no download); it is an optional dependency
and `load_digits` says how to install it. Pixels are scaled to [0, 1].
"""

import os
from typing import NamedTuple

import jax
import numpy as np

ORDERS = ("pixel", "row", "permuted")
NUM_CLASSES = 10
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")  # the usual mnist.npz (Keras)
INSTALL = "pip install scikit-learn"


class Dataset(NamedTuple):
    """Host arrays: images float32 `[n, height, width]` in [0, 1], labels int32 `[n]` in 0..9."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def sklearn_available() -> bool:
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def load_digits(key: jax.Array, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (values 0..16, scaled by 1/16), split at random by `key`.

    Raises ImportError naming the install command when scikit-learn is missing.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"expected test_fraction in (0, 1), received {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError(f"the 8x8 digits come with scikit-learn, which is not installed: "
                          f"{INSTALL}") from error
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    order = np.asarray(jax.random.permutation(key, len(labels)))
    num_test = int(round(test_fraction * len(labels)))
    test, train = order[:num_test], order[num_test:]
    return Dataset(images[train], labels[train], images[test], labels[test])


def _bad(path, expected: str, received: str) -> ValueError:
    return ValueError(f"MNIST file {path}: expected {expected}, received {received}")


def load_mnist(path: str | os.PathLike) -> Dataset:
    """The usual `mnist.npz`: arrays x_train `[n, 28, 28]` uint8, y_train `[n]`, x_test,
    y_test. Any image size works; uint8 pixels are scaled by 1/255, float pixels must already
    lie in [0, 1]. A missing or malformed file raises a ValueError naming what was expected."""
    if not os.path.isfile(path):
        raise _bad(path, "an existing .npz file (e.g. mnist.npz with arrays "
                   f"{', '.join(MNIST_KEYS)})", "no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # not a zip, a truncated zip, a pickled object, ...
        raise _bad(path, "a NumPy .npz archive", f"a file NumPy cannot read as one "
                   f"({type(error).__name__}: {error})") from None
    missing = [name for name in MNIST_KEYS if name not in arrays]
    if missing:
        raise _bad(path, f"arrays {', '.join(MNIST_KEYS)}", f"arrays {sorted(arrays)} "
                   f"(missing {', '.join(missing)})")
    parts = []
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or 0 in images.shape:
            raise _bad(path, f"x_{split} of shape [n, height, width] with n, height, width >= 1",
                       f"shape {images.shape}")
        if labels.shape != images.shape[:1]:
            raise _bad(path, f"y_{split} of shape ({images.shape[0]},) (one label per image)",
                       f"shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            raise _bad(path, f"y_{split} integer labels in 0..9", f"dtype {labels.dtype}, "
                       f"values {labels.min()}..{labels.max()}")
        parts += [_pixels(path, f"x_{split}", images), labels.astype(np.int32)]
    if parts[0].shape[1:] != parts[2].shape[1:]:
        raise _bad(path, f"x_test images of x_train's size {parts[0].shape[1:]}",
                   f"{parts[2].shape[1:]}")
    return Dataset(*parts)


def _pixels(path, name: str, images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if np.issubdtype(images.dtype, np.floating) and np.all((images >= 0) & (images <= 1)):
        return images.astype(np.float32)  # also rejects NaN
    received = (f"dtype {images.dtype}" if not np.issubdtype(images.dtype, np.floating)
                else f"values {np.nanmin(images)}..{np.nanmax(images)} (or NaN)")
    raise _bad(path, f"{name} uint8 pixels, or floats in [0, 1]", received)


def permutation(key: jax.Array, num_pixels: int) -> np.ndarray:
    """The fixed pixel order of the 'permuted' task: `[num_pixels]`, a function of `key`."""
    return np.asarray(jax.random.permutation(key, num_pixels))


def to_sequences(images: np.ndarray, order: str, pixel_order: np.ndarray | None = None
                 ) -> np.ndarray:
    """`[n, height, width]` images -> `[n, time, features]` sequences.

    'pixel': `[n, height*width, 1]` in raster order; 'row': `[n, height, width]`; 'permuted':
    `[n, height*width, 1]` in `pixel_order` (`permutation(key, height*width)`).
    """
    if order not in ORDERS:
        raise ValueError(f"expected order in {ORDERS}, received {order!r}")
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected images [n, height, width], received shape {images.shape}")
    n, height, width = images.shape
    if order == "row":
        return images
    flat = images.reshape(n, height * width)
    if order == "permuted":
        if pixel_order is None or sorted(np.asarray(pixel_order).tolist()) != list(
                range(height * width)):
            raise ValueError(f"expected pixel_order a permutation of {height * width} pixels, "
                             f"received {None if pixel_order is None else np.shape(pixel_order)}")
        flat = flat[:, pixel_order]
    return flat[..., None]
