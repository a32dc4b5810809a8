"""Caps on what a user's test set may hold, read by the format readers and normalisation at call time
(`limits.MAX_...`), so one place sets them."""

MAX_ROWS = 200_000
MAX_ROW_VALUES = 4_096
"""At most 64x64 pixels per image."""
MAX_VALUES = 200_000 * 784
"""At most 200,000 MNIST-size images' worth of values (627 MB as float32) in one set."""
MAX_CLASSES = 1_000
MAX_TITLE = 200
MAX_UNPACKED_BYTES = 512 * 2**20
"""Cap on what any uploaded file holds once uncompressed (zip members, npz arrays, gzip'd IDX)."""
MAX_ZIP_FILES = 100_000
MAX_IMAGE_PIXELS = 50_000_000
"""A larger image in a zip is refused before it is decoded (a small PNG can unpack to gigabytes)."""
MAX_IMAGE_BYTES = 64 * 2**20
"""Cap on one image in a zip, as a file and decoded (width x height x bytes per pixel, from its header):
a 0.5 MB zip can hold a 496 MiB "PNG"."""
