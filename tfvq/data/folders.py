"""Folders of image files: one checked scan, then a parallel tf.data stream of decoded images.

`tfvq.data.load`, `info` and `pixel_variance` read a directory through this module. The layout
is tfds' ImageFolder one, made optional: `root/{train,test,validation}/<class>/...` where those
split folders exist, otherwise the whole of `root` is the split "train"; the first directory
level under a split root names the classes (sorted, so labels are stable), and deeper folders
belong to their class folder.

Why not `keras.utils.image_dataset_from_directory` or `tfds.ImageFolder`: both decode lazily,
so one corrupt or truncated file stops an epoch halfway with an `InvalidArgumentError`, and
both decode 16-bit PNGs by dropping the low byte (v >> 8), not to the nearest 8-bit value. Here
`scan` fully decodes every file once, with the very decoder the stream uses (so that a file
the scan accepted cannot fail later), in parallel through tf.data, and remembers the result
per (folder, names, sizes and modification times): `info`, `load` and `pixel_variance` on the
same folder scan it once. Files that do not decode are reported in one warning (or raise with
`on_error="raise"`), never dropped silently. What is reused: tf.io's decoders, tf.data's
parallel map and `ignore_errors` (to find the bad files without a Python loop over decodes),
tfds' split-slice parser (`ReadInstruction`, so "train[:90%]" means what it means in tfds),
and `keras.utils.Progbar` for scans of more than 1000 files.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import types
import warnings
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_DIRS", "FolderScan", "ImageFile", "scan"]

AUTOTUNE = tf.data.AUTOTUNE

# What tf.io.decode_image reads (JPEG XL has no common extension, so it is left out).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# tfds' ImageFolder convention for split folders.
SPLIT_DIRS = ("train", "test", "validation")
# Files that operating systems and editors leave next to photos; not data, so not reported.
_LITTER = frozenset({"thumbs.db", "desktop.ini"})
_MAX_LISTED = 5
_PROGRESS_ABOVE = 1000
_SCANS: collections.OrderedDict = collections.OrderedDict()
_MAX_SCANS = 8

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageFile(NamedTuple):
    """One readable image of a folder: where it is and what it decodes to."""

    path: str
    split: str
    label: int  # index into class_names; -1 for a file directly under its split folder
    height: int
    width: int
    channels: int  # as stored: 1 gray, 2 gray + alpha, 3 RGB (GIF, palette), 4 RGBA


class BadFile(NamedTuple):
    path: str
    split: str
    reason: str


class FolderScan(NamedTuple):
    """The result of `scan`: readable images and bad files, both in sorted path order."""

    root: str
    split_names: tuple
    class_names: tuple | None
    images: tuple  # of ImageFile
    bad: tuple  # of BadFile

    @property
    def channels(self) -> int:
        """Channels when `channels=None`: 3 if any image is stored in colour, else 1."""
        return 3 if any(f.channels >= 3 for f in self.images) else 1

    def split(self, name: str) -> list:
        return [f for f in self.images if f.split == name]


def decode(contents: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, BMP, GIF (first frame) or WebP bytes to uint8 (H, W, stored channels).

    16-bit PNGs are rounded to the nearest 8-bit value, v / 257 (tf.io.decode_png would keep
    the high byte only, v >> 8, which is up to 1 too high).
    """
    # Padding the first bytes (not the file) keeps substr in range for files of < 25 bytes.
    header = tf.strings.substr(contents, 0, 25) + b"\0" * 25
    is_png16 = tf.logical_and(
        tf.equal(tf.strings.substr(header, 0, 8), _PNG_SIGNATURE),
        tf.equal(tf.strings.substr(header, 24, 1), b"\x10"),  # IHDR bit depth
    )

    def png16():
        wide = tf.cast(tf.io.decode_png(contents, channels=0, dtype=tf.uint16), tf.int32)
        # (v + 128) // 257 == round(v / 257): no v is halfway, as 257 is odd.
        return tf.cast((wide + 128) // 257, tf.uint8)

    def other():
        return tf.io.decode_image(contents, channels=0, expand_animations=False)

    return tf.cond(is_png16, png16, other)


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """(H, W, 1-4) uint8 as stored -> (H, W, channels): alpha dropped, gray <-> RGB converted."""
    stored = tf.shape(image)[-1]
    colour = stored >= 3
    if channels == 3:
        out = tf.cond(colour, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    else:
        out = tf.cond(
            colour,
            lambda: tf.image.rgb_to_grayscale(tf.ensure_shape(image[..., :3], (None, None, 3))),
            lambda: image[..., :1],
        )
    return tf.ensure_shape(out, (None, None, channels))


def _short_reason(err: Exception) -> str:
    message = getattr(err, "message", None) or str(err)
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:.*$", "", message, flags=re.S).strip() or type(err).__name__


def _reason(path: str) -> str:
    """Why `path` did not decode, from decoding it once more (only bad files get here)."""
    try:
        decode(tf.io.read_file(path))
    except (tf.errors.OpError, ValueError) as err:
        return _short_reason(err)
    return "read failed during the scan, decodes now (changed while scanning?)"


def _split_roots(root: str) -> dict:
    present = [s for s in SPLIT_DIRS if os.path.isdir(os.path.join(root, s))]
    if not present:
        return {"train": root}
    return {s: os.path.join(root, s) for s in present}


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _LITTER


def _walk(split_root: str):
    """(path, class folder or None) of every non-hidden file under split_root, sorted.

    Symlinked folders are followed (datasets are often assembled from links), each real
    folder once, so that a link loop cannot recurse forever.
    """
    seen, found = set(), []
    for folder, dirs, files in os.walk(split_root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        rel = os.path.relpath(folder, split_root)
        top = None if rel == os.curdir else rel.split(os.sep)[0]
        found.extend((os.path.join(folder, f), top) for f in files if not _hidden(f))
    # Sorting by path components puts "cats/x" before "cats_2/y", as the folders appear.
    return sorted(found, key=lambda item: os.path.relpath(item[0], split_root).split(os.sep))


def _decode_all(paths: Sequence[str]) -> dict:
    """{index: (height, width, channels)} of the paths that decode; parallel, in C++.

    tf.data's ignore_errors drops the elements whose decode fails, so the missing indices
    are the bad files.
    """
    if not paths:
        return {}
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths), tf.string))
    )
    ds = ds.map(
        lambda i, p: (i, tf.shape(decode(tf.io.read_file(p)))),
        num_parallel_calls=AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    progress = None
    if len(paths) > _PROGRESS_ABOVE:
        import keras  # only for its progress bar

        print(f"Checking {len(paths)} image files...")
        progress = keras.utils.Progbar(len(paths), unit_name="file")
    shapes = {}
    for i, shape in ds.batch(256).as_numpy_iterator():
        shapes.update(zip(i.tolist(), map(tuple, shape.tolist())))
        if progress is not None:
            progress.add(len(i))
    if progress is not None:
        progress.update(len(paths), finalize=True)
    return shapes


def scan(root: str) -> FolderScan:
    """Lists and fully decodes every file of an image folder once; cached per folder state.

    Args:
        root: the folder.

    Returns:
        A `FolderScan`. The cache key is the folder with every file's name, size and
        modification time, so a changed folder is scanned again.

    Example:
        >>> result = scan("photos/")
        >>> result.class_names, len(result.split("train")), len(result.bad)
        (('cats', 'rockets'), 20, 0)
    """
    root = os.path.abspath(root)
    roots = _split_roots(root)
    listed = [(split, path, top) for split, r in roots.items() for path, top in _walk(r)]
    stats = [os.stat(path) for _, path, _ in listed]
    key = (root, tuple((p, s.st_size, s.st_mtime_ns) for (_, p, _), s in zip(listed, stats)))
    if key in _SCANS:
        _SCANS.move_to_end(key)
        return _SCANS[key]

    bad, candidates = {}, []
    for i, ((split, path, _), stat) in enumerate(zip(listed, stats)):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            bad[i] = "not an image file (" + "/".join(e[1:] for e in IMAGE_EXTENSIONS) + ")"
        elif stat.st_size == 0:
            bad[i] = "empty file"
        else:
            candidates.append(i)
    shapes = _decode_all([listed[i][1] for i in candidates])
    shapes = {candidates[j]: shape for j, shape in shapes.items()}
    for i in candidates:
        if i not in shapes:
            bad[i] = _reason(listed[i][1])

    class_names = sorted({top for i, (_, _, top) in enumerate(listed) if i in shapes and top})
    index = {name: k for k, name in enumerate(class_names)}
    images = tuple(
        ImageFile(path, split, index.get(top, -1), *shapes[i])
        for i, (split, path, top) in enumerate(listed)
        if i in shapes
    )
    bad_files = tuple(BadFile(listed[i][1], listed[i][0], bad[i]) for i in sorted(bad))
    result = FolderScan(root, tuple(roots), tuple(class_names) or None, images, bad_files)
    _SCANS[key] = result
    if len(_SCANS) > _MAX_SCANS:
        _SCANS.popitem(last=False)
    return result


def report_bad(result: FolderScan, splits, on_error: str, caller: str) -> None:
    """One warning (absl log and `warnings.warn`) naming the bad files of `splits`, or a raise."""
    bad = [b for b in result.bad if b.split in splits]
    if not bad:
        return
    if on_error == "raise":
        first = bad[0]
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise ValueError(
            f"{caller}: {first.path!r} is not a readable image: {first.reason}{more}. "
            f"Pass on_error='skip' to skip such files with a warning."
        )
    total = len(bad) + sum(f.split in splits for f in result.images)
    listed = "; ".join(f"{b.path} ({b.reason})" for b in bad[:_MAX_LISTED])
    more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    message = (
        f"{caller}: skipping {len(bad)} of {total} files that are not readable images: "
        f"{listed}{more}"
    )
    logging.warning(message)
    warnings.warn(message, UserWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The `warnings.warn` stacklevel of the first frame outside tfvq.data: the user's call."""
    level, frame, here = 1, sys._getframe(1), os.path.dirname(os.path.abspath(__file__))
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def select(result: FolderScan, split: str) -> tuple[list, set]:
    """The readable images of a split spec ("train", "train[:90%]", "train+test", ...).

    Returns:
        (images in order, names of the splits the spec reads).
    """
    by_split = {s: result.split(s) for s in result.split_names}
    infos = {
        s: types.SimpleNamespace(num_examples=len(files), shard_lengths=[len(files)])
        for s, files in by_split.items()
    }
    try:
        instructions = tfds.core.ReadInstruction.from_spec(str(split)).to_absolute(infos)
    except ValueError as err:
        raise ValueError(
            f"split {split!r} does not apply to folder {result.root!r}, whose splits are "
            f"{list(result.split_names)} (sizes {[len(f) for f in by_split.values()]}): {err}"
        ) from err
    files = []
    for instruction in instructions:
        files.extend(by_split[instruction.splitname][instruction.from_ : instruction.to])
    return files, {instruction.splitname for instruction in instructions}


def common_shape(files, channels: int):
    """(H, W, channels) if all files share a size, else (None, None, channels)."""
    sizes = {(f.height, f.width) for f in files}
    return (*sizes.pop(), channels) if len(sizes) == 1 else (None, None, channels)


def dataset(files, channels: int, with_labels: bool, shuffle: bool, seed, image_shape):
    """{"image": uint8 (H, W, channels)[, "label": int64]} of `files`, decoded in parallel.

    Shuffling shuffles the file names (all of them, reshuffled each epoch) before decoding,
    so that a folder too large to cache is still read in a new order every epoch.
    """
    paths = tf.constant([f.path for f in files], tf.string, shape=(len(files),))
    labels = tf.constant([f.label for f in files], tf.int64, shape=(len(files),))
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        ds = ds.shuffle(max(1, len(files)), seed=seed, reshuffle_each_iteration=True)

    def read(path, label):
        image = to_channels(decode(tf.io.read_file(path)), channels)
        out = {"image": tf.ensure_shape(image, image_shape)}
        if with_labels:
            out["label"] = label
        return out

    # The scan decoded every file already, so errors here mean the folder changed since: the
    # element is dropped and tf.data logs it, rather than an epoch stopping halfway.
    return ds.map(read, num_parallel_calls=AUTOTUNE).ignore_errors(log_warning=True)


def pixel_counts(files) -> np.ndarray:
    return np.array([f.height * f.width for f in files], np.float64)
