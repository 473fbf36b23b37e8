"""Weighted pixel sums of frames: the inner product of trace extraction.

One sparse matrix ``(n_rows, n_pixels)`` (cell rows and neuropil rows stacked)
is applied to every frame of a block by a numba gather loop that reads the
frames in their own dtype (no float copy of the block) and accumulates in
float64. Reference: ``weights.toarray() @ frames.T`` in
``tests/test_extraction.py::test_weighted_sums_matches_dense``.

Where numba cannot run (CuPy chunks), or when torch is asked for, the same
matrix is a sparse matrix of the chunks' device (:func:`sparse_weights`)
and is applied by products (:func:`apply_weights`, which also runs the
numba loop for the CSR arrays themselves).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numba import njit

from .._backend import array_module, import_torch, sparse_module, xp_by_name

__all__ = ["weighted_sums", "ENGINES", "sparse_weights", "apply_weights"]

# how the weights are applied: numba's gather loop (NumPy chunks), a CuPy/SciPy sparse matrix, a torch one
ENGINES = ("numba", "cupy", "torch")

# bytes of one float64 temporary of a batch of frames of a sparse product: large enough that a typical
# chunk (96 MB of uint16 samples, 384 MB as float64) is one batch
_BATCH_BYTES = 2**29


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


def sparse_weights(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, n_pixels: int, *,
                   xp_name: str = "numpy", engine: str = "cupy") -> Any:
    """The CSR weights ``(n_rows, n_pixels)`` as the operand of :func:`apply_weights` for ``engine``.

    ``engine="numba"``: the arrays themselves (the gather loop needs no
    canonical form); ``"cupy"``: ``cupyx.scipy.sparse.csr_matrix`` on the
    device of ``xp_name`` (``scipy.sparse`` for "numpy"); ``"torch"``: a
    ``torch.sparse_csr_tensor`` on ``cuda`` (``cpu`` for "numpy"). float64
    weights.

    Examples
    --------
    >>> import numpy as np
    >>> W = sparse_weights(np.array([0, 2, 3]), np.array([0, 3, 1]), np.array([0.5, 0.5, 1.0]), 4)
    >>> W.toarray().tolist()
    [[0.5, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0]]
    """
    if engine == "numba":
        return (indptr, indices, weights)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES[1:]}, got {engine!r}")
    n_rows = int(len(indptr) - 1)
    # canonical CSR (sorted, distinct column indices per row; duplicates summed): torch and cuSPARSE
    # assume it, the numba gather loop does not need it
    import scipy.sparse

    # copies: canonicalising works in place, and the caller's arrays must not change
    canon = scipy.sparse.csr_matrix((np.array(weights, np.float64), np.array(indices, np.int64),
                                     np.array(indptr, np.int64)), shape=(n_rows, int(n_pixels)))
    canon.sum_duplicates()
    canon.sort_indices()
    indptr, indices, weights = canon.indptr, canon.indices, canon.data
    # int32 indices where they fit: every CuPy version's cuSPARSE path takes them
    itype = np.int32 if max(int(n_pixels), int(len(indices))) < 2**31 - 1 else np.int64
    if engine == "torch":
        torch = import_torch()
        device = "cuda" if xp_name == "cupy" else "cpu"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            # made once per graph, so the structure is checked (cheap next to the products)
            return torch.sparse_csr_tensor(
                torch.as_tensor(np.asarray(indptr, np.int64)), torch.as_tensor(np.asarray(indices, np.int64)),
                torch.as_tensor(np.asarray(weights, np.float64)), size=(n_rows, int(n_pixels)), device=device,
                check_invariants=True)
    xp = xp_by_name(xp_name)
    sp = sparse_module(xp)
    return sp.csr_matrix((xp.asarray(np.asarray(weights, np.float64)), xp.asarray(np.asarray(indices, itype)),
                          xp.asarray(np.asarray(indptr, itype))), shape=(n_rows, int(n_pixels)))


def _is_torch(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "torch"


def apply_weights(W: Any, frames: Any, *, batch: int | None = None) -> Any:
    """``W @ frames.T`` (float32 ``(n_rows, n_frames)``) for the weights ``W`` of :func:`sparse_weights` and raveled frames.

    CSR arrays (engine "numba") go to :func:`weighted_sums`. A sparse
    matrix multiplies the frames converted to float64 a batch at a time
    (default: temporaries of about 512 MB), in the frames' array module.

    Examples
    --------
    >>> import numpy as np
    >>> W = sparse_weights(np.array([0, 2, 3]), np.array([0, 3, 1]), np.array([0.5, 0.5, 1.0]), 4)
    >>> apply_weights(W, np.arange(8.0).reshape(2, 4)).tolist()
    [[1.5, 5.5], [1.0, 5.0]]
    """
    if isinstance(W, tuple):
        return weighted_sums(*W, frames, batch=batch)
    xp = array_module(frames)
    n_t = int(frames.shape[0])
    out = xp.empty((int(W.shape[0]), n_t), xp.float32)
    step = int(batch) if batch else max(1, _BATCH_BYTES // max(8 * int(frames.shape[1]), 1))
    torch = import_torch() if _is_torch(W) else None
    for t0 in range(0, n_t, step):
        x = frames[t0 : t0 + step].astype(xp.float64)
        if torch is not None:
            # zero-copy exchange through DLPack; the product is a dense (n_rows, b) tensor
            y = W @ torch.from_dlpack(x).T.contiguous()
            out[:, t0 : t0 + x.shape[0]] = xp.from_dlpack(y.contiguous())
        else:
            out[:, t0 : t0 + x.shape[0]] = W @ x.T
    return out
