"""The temporal-filter driver against plain NumPy: every edge policy, asymmetric halos, every chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from dask.core import get_dependencies

from fluoxr.drivers import WHOLE, TemporalFilter, apply_temporal
from fluoxr.testing import raise_if_dask_computes

N = 17
CHUNKINGS = [(N,), (1,) * N, (5, 1, 7, 2, 2), (2,) * 8 + (1,), (3, 14), (16, 1)]
HALOS = [(0, 0), (1, 1), (3, 0), (0, 4), (2, 5), (6, 6), (20, 3), (25, 25)]
NP_MODE = {"reflect": "symmetric", "edge": "edge", "zeros": "constant"}


def _weights(before: int, after: int) -> np.ndarray:
    # distinct weights, so that any frame in the wrong place shows
    return np.arange(1.0, before + after + 2.0) ** 1.5


def _reference(x: np.ndarray, before: int, after: int, edge: str, axis: int = 0) -> np.ndarray:
    w = _weights(before, after)
    xm = np.moveaxis(x, axis, 0).astype(np.float64)
    if edge == "none":
        padded, lo = xm, 0
    else:
        pad = [(before, after)] + [(0, 0)] * (xm.ndim - 1)
        if edge == "reflect":
            # scipy.ndimage's "reflect" repeats with period 2n also for halos longer than the recording
            idx = np.arange(-before, xm.shape[0] + after)
            j = np.mod(idx, 2 * xm.shape[0])
            idx = np.where(j >= xm.shape[0], 2 * xm.shape[0] - 1 - j, j) if xm.shape[0] > 1 else 0 * idx
            padded = xm[idx]
        else:
            padded = np.pad(xm, pad, mode=NP_MODE[edge])
        lo = before
    out = np.zeros(xm.shape)
    for t in range(xm.shape[0]):
        for j, wj in enumerate(w):
            s = lo + t - before + j
            if 0 <= s < padded.shape[0]:
                out[t] += wj * padded[s]
    return np.moveaxis(out, 0, axis)


def _kernel(window: np.ndarray, *, before: int, after: int, w: np.ndarray, hb: int, ax: int) -> np.ndarray:
    # taps hb before .. len(w) - 1 - hb after; with edge "none" the window can be short of context at the ends
    x = np.moveaxis(window, ax, 0)
    n = x.shape[0] - before - after
    out = np.zeros((n,) + x.shape[1:])
    for t in range(n):
        for j, wj in enumerate(w):
            s = before + t - hb + j
            if 0 <= s < x.shape[0]:
                out[t] += wj * x[s]
    return np.moveaxis(out, 0, ax)


def _filter(edge: str, split: bool = False) -> TemporalFilter:
    def halo(w: np.ndarray, hb: int, ax: int) -> tuple[int, int]:
        return hb, w.size - 1 - hb

    return TemporalFilter(_split_kernel if split else _kernel, halo=halo, edge=edge, split=split)


def _split_kernel(before: np.ndarray, chunk: np.ndarray, after: np.ndarray, *, w: np.ndarray, hb: int,
                  ax: int) -> np.ndarray:
    window = np.concatenate([before, chunk, after], axis=ax)
    return _kernel(window, before=before.shape[ax], after=after.shape[ax], w=w, hb=hb, ax=ax)


@pytest.mark.parametrize("edge", ["reflect", "edge", "zeros", "none"])
@pytest.mark.parametrize("halo", HALOS)
def test_driver_equals_numpy_for_every_chunking(edge, halo):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3))
    before, after = halo
    w = _weights(before, after)
    expected = _reference(x, before, after, edge)
    for chunks in CHUNKINGS:
        data = da.from_array(x, chunks=(chunks, 2))
        with raise_if_dask_computes():
            out = apply_temporal(data, _filter(edge), w=w, hb=before, ax=0)
        assert out.chunks == data.chunks
        np.testing.assert_allclose(out.compute(), expected, rtol=1e-12, err_msg=f"chunks {chunks}")


@pytest.mark.parametrize("edge", ["reflect", "zeros", "none"])
@pytest.mark.parametrize("halo", [(0, 3), (4, 1), (9, 9)])
def test_split_kernel_and_last_axis(edge, halo):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, N))
    before, after = halo
    w = _weights(before, after)
    expected = _reference(x, before, after, edge, axis=1)
    for chunks in CHUNKINGS:
        data = da.from_array(x, chunks=(1, chunks))
        with raise_if_dask_computes():
            out = apply_temporal(data, _filter(edge, split=True), axis=-1, w=w, hb=before, ax=1)
        assert out.chunks == data.chunks
        np.testing.assert_allclose(out.compute(), expected, rtol=1e-12, err_msg=f"chunks {chunks}")


def _where(window: np.ndarray, mask: np.ndarray, *, before: int, after: int, t0: int, n_frames: int) -> np.ndarray:
    core = window[before : window.shape[0] - after]
    return np.where(mask, core + t0 * 1000 + n_frames * 100000, 0)


def test_position_and_others_are_given_block_by_block():
    x = np.arange(10.0)
    mask = x % 3 != 0
    filt = TemporalFilter(_where, halo=(2, 1), edge="edge", position=True)
    for chunks in [(10,), (1,) * 10, (4, 1, 5)]:
        data = da.from_array(x, chunks=(chunks,))
        out = apply_temporal(data, filt, others=[da.from_array(mask, chunks=(chunks,))])
        starts = np.repeat(np.cumsum((0,) + chunks[:-1]), chunks)
        np.testing.assert_array_equal(out.compute(), np.where(mask, x + starts * 1000 + 10 * 100000, 0))


def _copy_view(block: np.ndarray, *, before: int, after: int) -> np.ndarray:
    return block[before : block.shape[0] - after] * 1


def test_halo_tasks_copy_only_the_edge_frames():
    # a chunk's task depends on the neighbouring chunk only through copies of its edge frames
    x = da.from_array(np.arange(40.0), chunks=10)
    out = apply_temporal(x, TemporalFilter(_copy_view, halo=(2, 3), edge="zeros"))
    graph = dict(out.__dask_graph__())
    heads = [k for k in graph if isinstance(k, tuple) and "-head-" in k[0]]
    tails = [k for k in graph if isinstance(k, tuple) and "-tail-" in k[0]]
    assert len(heads) == 3 and len(tails) == 3
    assert out.compute().tolist() == list(range(40))


def _row_rank(window: np.ndarray, *, before: int, after: int) -> np.ndarray:
    return np.argsort(np.argsort(window, axis=-1), axis=-1).astype(np.float64)


def test_whole_recording_filters_run_once_per_block_and_keep_the_chunks():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 23))
    data = da.from_array(x, chunks=(2, (4, 1, 18)))
    filt = TemporalFilter(_row_rank, halo=WHOLE)
    with raise_if_dask_computes():
        out = apply_temporal(data, filt, axis=1, whole_chunks={0: 3})
    assert out.chunks == data.chunks
    np.testing.assert_array_equal(out.compute(), _row_rank(x, before=0, after=0))


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="edge must be one of"):
        TemporalFilter(_copy_view, halo=(1, 1), edge="wrap")
    with pytest.raises(TypeError, match="kernel must be callable"):
        TemporalFilter(3, halo=(1, 1))
    data = da.zeros(5, chunks=2)
    with pytest.raises(ValueError, match="non-negative"):
        apply_temporal(data, TemporalFilter(_copy_view, halo=(-1, 1)))
    with pytest.raises(ValueError, match="halo must be"):
        apply_temporal(data, TemporalFilter(_copy_view, halo="all"))
    with pytest.raises(TypeError, match="data must be a dask array"):
        apply_temporal(np.zeros(5), TemporalFilter(_copy_view, halo=(1, 1)))
    with pytest.raises(ValueError, match="others\\[0\\]"):
        apply_temporal(data, TemporalFilter(_where, halo=(1, 1)), others=[da.zeros(5, chunks=3)])
    with pytest.raises(ValueError, match="axis must be"):
        apply_temporal(data, TemporalFilter(_copy_view, halo=(1, 1)), axis=1)


def _lag_products(window: np.ndarray, *, before: int, after: int, t0: int, n_frames: int,
                  maxlag: int) -> np.ndarray:
    # the products x[t] * x[t + maxlag] that start in this chunk (t < n_frames - maxlag), summed: (1, 1, y)
    n = window.shape[0] - after
    starts = min(n, n_frames - maxlag - t0)
    total = (window[:starts] * window[maxlag : maxlag + starts]).sum(axis=0) if starts > 0 else window[0] * 0
    return total[None, None]


@pytest.mark.parametrize("maxlag", [1, 3, 8])
def test_one_sided_halo_for_lag_products_with_a_new_axis(maxlag):
    # lag moments: halo (0, maxlag), one partial sum per chunk on a new axis, summed afterwards
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 4))
    expected = (x[:-maxlag] * x[maxlag:]).sum(axis=0)
    filt = TemporalFilter(_lag_products, halo=lambda maxlag: (0, maxlag), edge="none", position=True)
    for chunks in CHUNKINGS:
        data = da.from_array(x, chunks=(chunks, 4))
        with raise_if_dask_computes():
            parts = apply_temporal(data, filt, maxlag=maxlag, new_axis=[1],
                                   chunks=((1,) * len(chunks), (1,), (4,)))
        np.testing.assert_allclose(parts.sum(axis=(0, 1)).compute(), expected, rtol=1e-12)


class _Store:
    """An array read by slicing, like a zarr array behind ``open_video``: ``from_array`` makes ``getter`` tasks."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.shape, self.dtype, self.ndim = x, x.shape, x.dtype, x.ndim
        self.reads: list[tuple] = []

    def __getitem__(self, index: tuple) -> np.ndarray:
        self.reads.append(index)
        return self.x[index]


@pytest.mark.parametrize("edge", ["reflect", "edge", "zeros", "none"])
def test_halos_of_a_plain_read_are_read_again_not_taken_from_the_neighbours(edge):
    # a store-backed input: a chunk's task depends on its own read and small reads of its halo, never on a
    # neighbour's whole chunk, so dask frees each chunk when its own task ends; results are unchanged
    rng = np.random.default_rng(5)
    x = rng.normal(size=(23, 3))
    params = {"w": _weights(3, 5), "hb": 3, "ax": 0}
    expected = apply_temporal(da.from_array(x, chunks=(4, 3)), _filter(edge), **params).compute()
    for chunks in [(4, 3), (1, 3), (2, 3), (7, 3), (23, 3)]:
        store = _Store(x)
        data = da.from_array(store, chunks=chunks)
        out = apply_temporal(data, _filter(edge), **params)
        graph = out.__dask_graph__()
        runs = [k for k in graph if isinstance(k, tuple) and k[0] == out.name]
        for k in runs:
            deps = {d[1] for d in get_dependencies(graph, k) if isinstance(d, tuple) and d[0] == data.name}
            assert deps == {k[1]}
        assert not [k for k in graph if isinstance(k, tuple) and ("-head-" in k[0] or "-tail-" in k[0])]
        np.testing.assert_array_equal(out.compute(), expected)
        assert out.chunks == data.chunks
        # the halo reads are narrow: no read is longer than a chunk
        assert max(s[0].stop - s[0].start for s in store.reads) <= chunks[0]
