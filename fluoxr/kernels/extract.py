"""Weighted pixel sums of frames: the inner product of trace extraction.

One sparse matrix ``(n_rows, n_pixels)`` (cell rows and neuropil rows stacked)
is applied to every frame of a block by a numba gather loop that reads the
frames in their own dtype (no float copy of the block) and accumulates in
float64. Reference: ``weights.toarray() @ frames.T`` in
``tests/test_extraction.py::test_weighted_sums_matches_dense``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["weighted_sums"]


@njit(cache=True, nogil=True)
def _weighted_sums(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, frames: np.ndarray,
                   out: np.ndarray) -> None:
    n_rows = indptr.size - 1
    for t in range(frames.shape[0]):
        frame = frames[t]
        for r in range(n_rows):
            acc = 0.0
            for k in range(indptr[r], indptr[r + 1]):
                acc += weights[k] * frame[indices[k]]
            out[r, t] = acc


def weighted_sums(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, frames: np.ndarray,
                  *, batch: int | None = None) -> np.ndarray:
    """``W @ frames.T`` for a CSR matrix ``W`` given by ``(indptr, indices, weights)``.

    Parameters
    ----------
    indptr, indices : int64 arrays
        CSR structure of ``W`` (``n_rows + 1`` and ``nnz`` entries); column
        ``j`` is raveled pixel ``j`` of a frame.
    weights : float64 array
        The ``nnz`` weights.
    frames : array ``(n_frames, n_pixels)``
        Frames of any real dtype, raveled. float16 frames are converted to
        float32 one batch at a time (numba has no float16).
    batch : int, optional
        Frames per kernel call. The gather loop reads the frames in place
        (no float copy), so memory does not depend on it; it only splits
        the work.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_frames)`` float32.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.extract import weighted_sums
    >>> indptr, indices, weights = np.array([0, 2, 3]), np.array([0, 3, 1]), np.array([0.5, 0.5, 1.0])
    >>> weighted_sums(indptr, indices, weights, np.arange(8.0).reshape(2, 4)).tolist()
    [[1.5, 5.5], [1.0, 5.0]]
    """
    n_frames = frames.shape[0]
    out = np.empty((indptr.size - 1, n_frames), np.float32)
    if frames.dtype == np.bool_:
        frames = frames.view(np.uint8)
    step = n_frames if not batch else max(1, int(batch))
    for t0 in range(0, n_frames, step):
        t1 = min(n_frames, t0 + step)
        # strided frames (one channel of a multi-channel block) are read in place, not copied
        part = frames[t0:t1]
        if part.dtype == np.float16:
            # numba cannot type float16 arrays; float32 holds every float16 value exactly,
            # and converting per batch keeps the copy to one batch of frames
            part = part.astype(np.float32)
        _weighted_sums(indptr, indices, weights, part, out[:, t0:t1])
    return out
