"""COCO run-length encoding of masks, byte for byte as ``pycocotools.mask.encode`` writes it."""

from typing import Any, Dict

import numpy as np


def rle_encode(mask: np.ndarray) -> Dict[str, Any]:
    """COCO run-length encoding of a 2-D mask, as ``pycocotools.mask.encode`` writes it.

    Runs are counted down the columns (column-major), starting with a run of zeros (empty when the
    first pixel is set); ``counts`` is the compressed string form. Returns {"size": [h, w], "counts": str}.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": _rle_string(rle_counts(mask))}


def rle_counts(mask: np.ndarray) -> np.ndarray:
    """Column-major run lengths of a 2-D mask, zeros first: the uncompressed COCO RLE counts (int64).

    Only the columns from the first to the last with a set pixel are scanned (an instance mask covers a
    small part of the frame); the empty columns either side join the first and last runs of zeros.
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    height, width = mask.shape
    columns = np.flatnonzero(mask.any(axis=0)) if mask.size else np.zeros(0, np.int64)
    if not len(columns):
        return np.array([height * width] if mask.size else [], np.int64)
    first, last = int(columns[0]), int(columns[-1]) + 1
    flat = mask[:, first:last].T.ravel()
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], starts, [flat.size]))).astype(np.int64)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    counts[0] += first * height
    after = (width - last) * height
    if len(counts) % 2:  # ends with a run of zeros (runs alternate, zeros first)
        counts[-1] += after
    elif after:
        counts = np.concatenate((counts, [after]))
    return counts


def _rle_string(counts: np.ndarray) -> str:
    """pycocotools' compressed counts: each count (from the fourth on, minus the count two back) in
    5-bit groups, low first, 0x20 marking "more follows", offset by 48 into printable ASCII."""
    values = np.asarray(counts, np.int64).copy()
    values[3:] -= np.asarray(counts, np.int64)[1:-2]  # pycocotools: i > 2
    shifts = 5 * np.arange(8, dtype=np.int64)  # 8 groups of 5 bits cover any count of an int32 image size
    chunks = (values[:, None] >> shifts) & 0x1F
    after = values[:, None] >> (shifts + 5)
    more = np.where(chunks & 0x10, after != -1, after != 0)
    used = np.arange(8)[None, :] <= np.argmin(more, axis=1)[:, None]  # up to the first group without "more"
    codes = chunks + 48 + np.where(more, 0x20, 0)
    return codes[used].astype(np.uint8).tobytes().decode("ascii")
