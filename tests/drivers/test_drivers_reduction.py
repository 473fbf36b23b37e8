"""The time-reduction driver (fluoxr.drivers.reduce_time) against plain NumPy on small arrays."""

from __future__ import annotations

from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
import pytest

from fluoxr.drivers import TimeReduction, reduce_time
from fluoxr.sofi.moments import block_average, mean_reduction, moment_reduction
from fluoxr.testing import raise_if_dask_computes


class Span(NamedTuple):
    """Frames, sum, maximum and the first frame seen (the first shows that merges keep the frame order)."""

    frames: int
    total: np.ndarray
    peak: np.ndarray
    first: np.ndarray


def _span_chunk(block):
    return Span(block.shape[0], block.sum(axis=0), block.max(axis=0), block[0])


def _span_combine(states):
    out = states[0]
    for s in states[1:]:
        out = Span(out.frames + s.frames, out.total + s.total, np.maximum(out.peak, s.peak), out.first)
    return out


def _span_finalize(state):
    return np.stack([state.total / state.frames, state.peak, state.first, np.full_like(state.peak, state.frames)])


SPAN = TimeReduction("test-span", chunk=_span_chunk, combine=_span_combine, finalize=_span_finalize, rows=4)


def _span_ref(x):
    return np.stack([x.mean(0), x.max(0), x[0], np.full(x.shape[1:], len(x), float)])


X = np.random.default_rng(0).integers(0, 1000, (23, 3, 4)).astype(np.float64)
CHUNKINGS = [1, 2, 5, 23, (7, 1, 10, 5), (1, 21, 1)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("spatial", [(3, 4), (2, 3)])
def test_whole_recording(chunks, spatial):
    data = da.from_array(X, chunks=(chunks,) + spatial)
    out = reduce_time(data, SPAN)
    assert out.shape == (4, 3, 4) and out.chunks[1:] == data.chunks[1:]
    np.testing.assert_allclose(out.compute(scheduler="sync"), _span_ref(X), rtol=1e-12)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_whole_recording_moments_match_numpy(chunks):
    data = da.from_array(X, chunks=(chunks, 3, 4))
    out = reduce_time(data, moment_reduction(4)).compute(scheduler="sync")
    mean = X.mean(0)
    ref = [mean] + [((X - mean) ** k).mean(0) for k in range(1, 5)]
    np.testing.assert_allclose(out, np.stack(ref), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(reduce_time(data, mean_reduction())[0].compute(), mean, rtol=1e-14)


@pytest.mark.parametrize("split_every", [2, 3, None])
def test_split_every_gives_the_same_tree_result(split_every):
    data = da.from_array(X, chunks=(1, 3, 4))
    out = reduce_time(data, SPAN, split_every=split_every).compute(scheduler="sync")
    np.testing.assert_allclose(out, _span_ref(X), rtol=1e-12)


EDGES = [[0, 23], [0, 5, 5, 6, 23], [0, 1, 2, 3, 23], [0, 11, 12, 23, 23]]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("edges", EDGES)
def test_fixed_segments(chunks, edges):
    data = da.from_array(X, chunks=(chunks, 2, 4))
    out = reduce_time(data, SPAN, segments=edges, split_every=2)
    n_seg = len(edges) - 1
    assert out.shape == (n_seg, 4, 3, 4)
    assert out.chunks[0] == (1,) * n_seg and out.chunks[2:] == data.chunks[1:]  # one chunk per segment
    got = out.compute(scheduler="sync")
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if a == b:
            assert np.isnan(got[k]).all()
        else:
            np.testing.assert_allclose(got[k], _span_ref(X[a:b]), rtol=1e-12)


def _edges_from_data(x, n_seg):
    """Edges that depend on the data: cut where the cumulative frame sum passes equal fractions."""
    c = np.cumsum(x.reshape(len(x), -1).sum(1))
    cuts = np.searchsorted(c, c[-1] * np.arange(1, n_seg) / n_seg)
    return np.r_[0, cuts, len(x)].astype(np.int64)


def _lazy_edges(data, n_seg):
    totals = data.sum(axis=tuple(range(1, data.ndim))).rechunk(-1)
    return totals.map_blocks(lambda t: _edges_from_data(t[:, None], n_seg), chunks=((n_seg + 1,),),
                             dtype=np.int64)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_lazy_segments(chunks):
    data = da.from_array(X, chunks=(chunks, 3, 2))
    with raise_if_dask_computes():
        edges = _lazy_edges(data, 4)
        out = reduce_time(data, SPAN, segments=edges)
    assert out.shape == (4, 4, 3, 4) and out.numblocks[0] == 1
    got, e = dask.compute(out, edges, scheduler="sync")
    assert e[0] == 0 and e[-1] == len(X)
    for k, (a, b) in enumerate(zip(e[:-1], e[1:])):
        if a == b:
            assert np.isnan(got[k]).all()
        else:
            np.testing.assert_allclose(got[k], _span_ref(X[a:b]), rtol=1e-12)


def test_lazy_segments_with_empty_ones():
    data = da.from_array(X, chunks=(4, 3, 4))
    edges = da.from_array(np.array([0, 0, 9, 9, 23, 23]), chunks=-1)
    got = reduce_time(data, SPAN, segments=edges).compute(scheduler="sync")
    for k in (0, 2, 4):
        assert np.isnan(got[k]).all()
    np.testing.assert_allclose(got[1], _span_ref(X[0:9]))
    np.testing.assert_allclose(got[3], _span_ref(X[9:23]))


def _average_ref(x, edges, p):
    from fluoxr.kernels.moments import cumulants_from_moments

    rows, cums = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        if a == b:
            continue
        seg = x[a:b]
        mean = seg.mean(0)
        st = np.stack([mean] + [((seg - mean) ** k).mean(0) for k in range(1, p + 1)])
        rows.append(st)
        cums.append(np.concatenate([st[:1], cumulants_from_moments(st[1:])]))
    return np.concatenate([np.mean(rows, 0), np.mean(cums, 0)])


@pytest.mark.parametrize("lazy", [True, False])
@pytest.mark.parametrize("chunks", [1, 6, (7, 1, 10, 5)])
def test_segments_across(lazy, chunks):
    """A second reduction over the segments' results: the block average of moments and cumulants."""
    data = da.from_array(X, chunks=(chunks, 3, 4))
    edges = np.array([0, 4, 4, 13, 23])
    with raise_if_dask_computes():
        segments = da.from_array(edges, chunks=-1) if lazy else edges
        out = reduce_time(data, moment_reduction(3), segments=segments, across=block_average(3))
    assert out.shape == (8, 3, 4)
    np.testing.assert_allclose(out.compute(scheduler="sync"), _average_ref(X, edges, 3), rtol=1e-9, atol=1e-6)


def test_fixed_and_lazy_segments_agree_bitwise_on_moments():
    data = da.from_array(X, chunks=((7, 1, 10, 5), 3, 4))
    edges = [0, 3, 3, 17, 23]
    fixed = reduce_time(data, moment_reduction(5), segments=edges).compute(scheduler="sync")
    lazy = reduce_time(data, moment_reduction(5), segments=da.from_array(np.array(edges))).compute(scheduler="sync")
    np.testing.assert_array_equal(fixed, lazy)


def test_chunk_segments_hook_is_used():
    calls = []

    def segments(block, t0, edges):
        calls.append((t0, tuple(edges)))
        out = {}
        for k in range(len(edges) - 1):
            a, b = max(edges[k], t0), min(edges[k + 1], t0 + len(block))
            if a < b:
                out[k] = _span_chunk(block[a - t0 : b - t0])
        return out

    red = TimeReduction("test-span", chunk=_span_chunk, combine=_span_combine, finalize=_span_finalize, rows=4,
                        chunk_segments=segments)
    data = da.from_array(X, chunks=(5, 3, 4))
    got = reduce_time(data, red, segments=[0, 8, 23]).compute(scheduler="sync")
    assert calls and all(len(e) <= 3 for _, e in calls)
    np.testing.assert_allclose(got[0], _span_ref(X[:8]))
    np.testing.assert_allclose(got[1], _span_ref(X[8:]))


def test_no_rechunk_of_the_time_axis_and_states_stay_small():
    """Each task holds one state (a few images), never the frames of more than one chunk."""
    from dask.callbacks import Callback

    big = np.random.default_rng(1).normal(size=(200, 4, 4))
    data = da.from_array(big, chunks=(2, 4, 4))
    sizes = []

    class Sizes(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            name = key[0] if isinstance(key, tuple) else key
            if "test-span" in str(name):
                sizes.append(sum(getattr(v, "nbytes", 0) for v in (result if isinstance(result, tuple) else [result])))

    with Sizes():
        reduce_time(data, SPAN).compute(scheduler="sync")
    assert sizes and max(sizes) <= 4 * 16 * 8


def test_building_the_graph_computes_nothing():
    data = da.from_array(X, chunks=(3, 3, 4))
    with raise_if_dask_computes():
        reduce_time(data, SPAN)
        reduce_time(data, SPAN, segments=[0, 10, 23])
        reduce_time(data, SPAN, segments=_lazy_edges(data, 3))
        reduce_time(data, moment_reduction(2), segments=_lazy_edges(data, 3), across=block_average(2))


def test_the_same_reduction_gives_the_same_graph():
    data = da.from_array(X, chunks=(3, 3, 4))
    assert reduce_time(data, moment_reduction(3)).name == reduce_time(data, moment_reduction(3)).name
    assert (reduce_time(data, moment_reduction(3), segments=[0, 5, 23]).name
            == reduce_time(data, moment_reduction(3), segments=[0, 5, 23]).name)


def test_bad_arguments():
    data = da.from_array(X, chunks=(3, 3, 4))
    with pytest.raises(TypeError, match="reduction"):
        reduce_time(data, "mean")
    with pytest.raises(TypeError, match="data"):
        reduce_time(X, SPAN)
    with pytest.raises(ValueError, match="across needs segments"):
        reduce_time(data, SPAN, across=SPAN)
    with pytest.raises(ValueError, match="segments must rise"):
        reduce_time(data, SPAN, segments=[0, 30])
    with pytest.raises(ValueError, match="segments must be a 1-D"):
        reduce_time(data, SPAN, segments=[0])
    with pytest.raises(ValueError, match="split_every"):
        reduce_time(data, SPAN, split_every=1)
    with pytest.raises(ValueError, match="rows"):
        TimeReduction("x", chunk=_span_chunk, combine=_span_combine, finalize=_span_finalize, rows=0)
    with pytest.raises(TypeError, match="combine"):
        TimeReduction("x", chunk=_span_chunk, combine=None, finalize=_span_finalize)
