"""gather_frames and after (fluoxr.drivers.gather) against plain NumPy indexing on small arrays."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

import fluoxr
from fluoxr.drivers.gather import after, gather_frames
from fluoxr.testing import raise_if_dask_computes

X = np.arange(23 * 3 * 2, dtype=np.float32).reshape(23, 3, 2)
INDICES = [
    [0],
    [22],
    [0, 4, 5, 6, 22],
    list(range(0, 23, 3)),
    [7, 2, 2, 19, 0],  # unsorted, repeated
    list(range(23)),
]


@pytest.mark.parametrize("chunks", [1, 2, 5, 7, 23])
@pytest.mark.parametrize("indices", INDICES)
def test_equals_numpy_take_for_every_chunking(chunks, indices):
    x = da.from_array(X, chunks=(chunks, 2, 2))
    with raise_if_dask_computes():
        out = gather_frames(x, indices)
    assert out.chunks[0] == (len(indices),) and out.chunks[1:] == x.chunks[1:]
    np.testing.assert_array_equal(out.compute(), X[indices])


def test_other_axis():
    x = da.from_array(np.moveaxis(X, 0, 2), chunks=(2, 2, 4))
    np.testing.assert_array_equal(gather_frames(x, [5, 1, 9], axis=2).compute(), np.moveaxis(X, 0, 2)[:, :, [5, 1, 9]])


def test_a_store_is_read_once_per_chunk_holding_frames(tmp_path):
    """300 frames spread over a 10-chunk recording: 10 narrow reads of the store, not 300 (a storage chunk is
    decoded whole for any frame of it), and no task reads a whole chunk of the recording."""
    v = fluoxr.as_video(np.random.default_rng(0).integers(0, 100, (1000, 8, 8), dtype=np.uint16))
    fluoxr.save(v.chunk({"time": 100}), tmp_path / "v.zarr")
    video = fluoxr.open_video(tmp_path / "v.zarr", chunks={"time": 100})
    assert video.data.numblocks[0] == 10
    idx = np.linspace(0, 1000, 301, dtype=int)[:-1]
    out = gather_frames(video.data, idx)
    graph = dict(out.dask.cull(set(dask.core.flatten(out.__dask_keys__()))))
    spans = [k for k in graph if isinstance(k, tuple) and k[0].startswith("gather-frames-span")]
    assert len(spans) == 10
    assert not any(isinstance(k, tuple) and k[0] == video.data.name for k in graph)  # no whole-chunk read
    np.testing.assert_array_equal(out.compute(), v.values[idx])


@pytest.mark.parametrize("indices", [[], [-1], [23], [[1, 2]]])
def test_bad_indices(indices):
    with pytest.raises(ValueError, match="indices"):
        gather_frames(da.from_array(X, chunks=5), indices)


def test_after_keeps_values_and_chunks():
    x = da.from_array(X, chunks=(4, 3, 2))
    y = after(x, x.sum())
    assert y.chunks == x.chunks and y.name == after(x, x.sum()).name
    np.testing.assert_array_equal(y.compute(), X)
    np.testing.assert_array_equal(dask.compute(y, x.sum())[0], X)
