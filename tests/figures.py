"""Checks that a figure a test made is a real picture: a PNG that decodes, of plausible (or the
exact expected) pixel size, with something drawn on it (not one colour)."""

import numpy as np
from PIL import Image


def assert_figure(path, size=None, cell=None, min_size=(150, 100), max_size=6000,
                  drawn_fraction=0.01):
    """Decode the PNG at `path` and return it as a `[height, width, channels]` uint8 array.

    size: the exact (width, height) in pixels, e.g. figsize * dpi for a figure saved without
      bbox_inches="tight". cell: (width, height) that the size must be a whole multiple of (a
      grid of equal panels). Otherwise each side must lie in [min_size, max_size].
    drawn_fraction: the least fraction of pixels that differ from the commonest colour (the
      background): an empty canvas, or one painted a single colour, fails.
    """
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: expected a PNG, received {image.format}"
        pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    if size is not None:
        assert (width, height) == tuple(size), f"{path}: {width}x{height}, expected {size}"
    elif cell is not None:
        assert width % cell[0] == 0 and height % cell[1] == 0 and width and height, (
            f"{path}: {width}x{height} is not a grid of {cell[0]}x{cell[1]} panels")
    else:
        assert min_size[0] <= width <= max_size and min_size[1] <= height <= max_size, (
            f"{path}: {width}x{height} pixels is not a plausible figure size")
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    assert len(colours) > 1, f"{path}: one colour {colours[0]} everywhere"
    drawn = 1 - counts.max() / len(flat)
    assert drawn >= drawn_fraction, f"{path}: only {drawn:.2%} of pixels differ from background"
    return pixels
