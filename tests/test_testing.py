"""The shared test helpers themselves must be able to fail."""

import numpy as np
import pytest

from fluoxr.testing import (
    assert_chunk_invariant,
    assert_results_close,
    default_chunkings,
    raise_if_dask_computes,
    tiny_video,
)


def test_default_chunkings_cover_the_cases():
    cs = default_chunkings(10, halo=4)
    assert (10,) in cs and (1,) * 10 in cs and (3, 3, 3, 1) in cs
    assert all(sum(c) == 10 for c in cs)
    assert any(len(set(c[:-1])) > 1 for c in cs)  # an uneven one


def test_chunk_invariant_passes_for_invariant_ops_and_fails_otherwise():
    v = tiny_video((12, 3, 4))
    assert_chunk_invariant(lambda x: x.mean("time"), v, rtol=1e-12)
    # a per-chunk operation that does depend on chunking must be caught
    bad = lambda x: x.copy(data=x.data.map_blocks(lambda b: b - b.mean(axis=0), dtype=float))  # noqa: E731
    with pytest.raises(AssertionError):
        assert_chunk_invariant(bad, v.astype(float))


def test_chunk_invariant_checks_laziness():
    v = tiny_video((6, 3, 3))
    with pytest.raises(RuntimeError, match="Too many computes"):
        assert_chunk_invariant(lambda x: float(x.mean()), v)
    assert_chunk_invariant(lambda x: float(x.mean()), v, check_lazy=False, rtol=1e-12)


def test_raise_if_dask_computes_counts():
    v = tiny_video((4, 2, 2))
    with raise_if_dask_computes(max_computes=1) as sched:
        v.sum().compute()
    assert sched.total_computes == 1
    with pytest.raises(RuntimeError):
        with raise_if_dask_computes():
            v.values


def test_assert_results_close_kinds():
    import pandas as pd

    assert_results_close((np.ones(3), {"a": 1}), (np.ones(3), {"a": 1}))
    with pytest.raises(AssertionError):
        assert_results_close(np.ones(3), np.ones(3) + 1e-3)
    with pytest.raises(AssertionError):
        assert_results_close(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [2.0]}))
    with pytest.raises(AssertionError):
        assert_results_close(np.array([1, 2]), np.array([1, 3]))


def test_tiny_video():
    v = tiny_video((5, 2, 3, 4), dtype="float32", chunks=2, fps=None)
    assert v.dims == ("time", "channel", "y", "x") and v.dtype == np.float32 and v.chunks[0] == (2, 2, 1)
    np.testing.assert_array_equal(v.values, tiny_video((5, 2, 3, 4), dtype="float32").values)
