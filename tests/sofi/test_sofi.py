"""Lazy SOFI statistics: references, chunk invariance, laziness, one read, ground truth, bad input."""

from __future__ import annotations

import math
import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr import sofi
from fluoxr.kernels import sofi as ks
from fluoxr.testing import assert_chunk_invariant, default_chunkings, raise_if_dask_computes, tiny_video
from fluoxr.testing.references import central_moments as ref_moments
from fluoxr.testing.references import cross_products as ref_xc
from fluoxr.testing.references import cumulants_from_moments as ref_cumulants
from fluoxr.testing.references import lag_moment as ref_lag


def scaled_close(actual, expected, rtol):
    """Compare per order on the order's own scale (odd moments of symmetric data are near 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    # zip would stop at the shorter one (or compare nothing): the shapes must agree first
    assert actual.shape == expected.shape, f"shapes differ: {actual.shape} != {expected.shape}"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max())


def test_scaled_close_compares_shapes():
    with pytest.raises(AssertionError, match="shapes differ"):
        scaled_close(np.zeros((2, 3)), np.zeros((0, 3)), 1e-9)
    with pytest.raises(AssertionError, match="shapes differ"):
        scaled_close(np.zeros((3, 3)), np.zeros((2, 3)), 1e-9)


class CountingSource:
    """A dask array whose chunk reads are counted (to check how often the data are read)."""

    def __init__(self, data: np.ndarray, chunks) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self.data = data
        self.array = da.from_array(data, chunks=chunks).map_blocks(self._read, dtype=data.dtype)

    def _read(self, block: np.ndarray) -> np.ndarray:
        if block.size:
            with self._lock:
                self.count += 1
        return block


# -------------------------------------------------------------------------------------------- moments


def test_moments_and_cumulants_match_reference_for_every_chunking():
    video = tiny_video((23, 5, 6), dtype=np.uint16, scale=3000)
    x = video.values
    m_ref = ref_moments(x, range(1, 9))
    k_ref = ref_cumulants({n: m_ref[n - 1] for n in range(1, 9)})
    m = assert_chunk_invariant(lambda v: fluoxr.moments(v, 8), video, rtol=1e-9)
    scaled_close(m.values[1:], m_ref[1:], 1e-10)
    assert np.all(m.sel(order=1).values == 0)
    np.testing.assert_allclose(m.mean_image, x.mean(0))
    assert m.dims == ("order", "y", "x") and m.dtype == np.float64 and m.order.values.tolist() == list(range(1, 9))
    k = assert_chunk_invariant(lambda v: fluoxr.cumulants(v, [2, 4, 6, 8]), video, rtol=1e-8)
    scaled_close(k.values, [k_ref[n] for n in (2, 4, 6, 8)], 1e-8)


def test_orders_subset_and_order():
    video = tiny_video((15, 3, 4))
    m = fluoxr.moments(video, [5, 2]).compute()
    assert m.order.values.tolist() == [5, 2]
    scaled_close(m.values, ref_moments(video.values, [5, 2]), 1e-10)


def test_offset_uint16_order6_against_two_pass_reference():
    """Order-6 moments of uint16 data carrying a +1e6 offset agree with float64 two-pass NumPy to 1e-6."""
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 65536, (300, 6, 5), dtype=np.uint16)
    x = raw.astype(np.float64) + 1e6
    ref = ref_moments(x, range(2, 7))
    for chunks in [300, 7, 1]:
        got = fluoxr.moments(fluoxr.as_video(x, chunks=chunks), 6).sel(order=slice(2, None)).compute()
        scaled_close(got.values, ref, 1e-6)
    # and the same moments as the data without the offset
    plain = fluoxr.moments(fluoxr.as_video(raw, chunks=13), 6).sel(order=slice(2, None)).compute()
    scaled_close(plain.values, ref, 1e-6)


def test_constant_background_adds_nothing_to_cumulants():
    video = tiny_video((40, 4, 4), dtype=np.float64, scale=100)
    k = fluoxr.cumulants(video, 6).compute()
    kb = fluoxr.cumulants(video + 5000.0, 6).compute()
    scaled_close(kb.sel(order=slice(2, None)).values, k.sel(order=slice(2, None)).values, 1e-8)
    np.testing.assert_allclose(kb.mean_image, k.mean_image + 5000.0)


def test_extra_dims_are_kept():
    video = tiny_video((20, 2, 4, 5), chunks=6)
    assert video.dims == ("time", "channel", "y", "x")
    m = fluoxr.moments(video, 3).compute()
    assert m.dims == ("order", "channel", "y", "x") and m.mean_image.dims == ("channel", "y", "x")
    for c in range(2):
        scaled_close(m.isel(channel=c).values[1:], ref_moments(video.values[:, c], [2, 3]), 1e-10)


def test_spatially_chunked_video():
    video = tiny_video((20, 8, 8), chunks=6).chunk({"y": 3, "x": 5})
    m = fluoxr.cumulants(video, 4).compute()
    ref = fluoxr.cumulants(video.chunk({"y": -1, "x": -1}), 4).compute()
    xr.testing.assert_allclose(m, ref)


def test_sofi_images_reads_the_data_once():
    x = np.random.default_rng(0).poisson(100, (40, 6, 6)).astype(np.uint16)
    src = CountingSource(x, (7, 6, 6))
    video = fluoxr.as_video(src.array)
    with raise_if_dask_computes():
        ds = fluoxr.sofi_images(video, 6)
    ds = ds.compute(scheduler="sync")
    assert src.count == 6  # one read per chunk for mean, all moments and all cumulants
    scaled_close(ds.moments.values[1:], ref_moments(x, range(2, 7)), 1e-10)
    np.testing.assert_allclose(ds.mean_image, x.mean(0))
    # separately built moments and cumulants of the same orders share the reduction
    src.count = 0
    dask.compute(fluoxr.moments(video, 6), fluoxr.cumulants(video, 6), scheduler="sync")
    assert src.count == 6
    # bleaching correction: one pass for the total signal, one for the blocks
    src.count = 0
    fluoxr.sofi_images(video, 4, bleach_correction=True, fbc=0.25, smooth_kernel=5).compute(scheduler="sync")
    assert src.count == 12


def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(o) for o in obj.values())
    return 0


def test_reduction_states_do_not_grow_with_frames():
    """Every task of the moment reduction holds one state (a few images), whatever the number of frames."""
    from dask.callbacks import Callback

    class Sizes(Callback):
        def __init__(self):
            super().__init__()
            self.max = 0

        def _posttask(self, key, result, dsk, state, worker_id):
            name = key[0] if isinstance(key, tuple) else key
            if "fluoxr-sofi" in str(name):
                self.max = max(self.max, _nbytes(result))

    largest = []
    for frames in (32, 256):
        video = tiny_video((frames, 4, 4), chunks=2)
        with Sizes() as cb:
            fluoxr.sofi_images(video, 6).compute(scheduler="sync")
        largest.append(cb.max)
    assert largest[0] == largest[1] <= (6 + 1) * 16 * 8 + 64


class _TaskSizes:
    """Largest result (bytes of its arrays) of the SOFI tasks of a computation."""

    def __init__(self) -> None:
        from dask.callbacks import Callback

        sizes = self

        class _Cb(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                name = key[0] if isinstance(key, tuple) else key
                if "fluoxr-sofi" in str(name):
                    sizes.max = max(sizes.max, _nbytes(result))

        self.max = 0
        self.callback = _Cb()


def test_known_segments_are_reduced_apart():
    """Explicit edges and windows: one chunk per segment; no task holds the states of all segments."""
    one = (6 + 1) * 16 * 8  # stats of one segment: mean + orders 1..6 of 4 x 4 float64 pixels
    largest = []
    for frames in (60, 240):
        video = tiny_video((frames, 4, 4), chunks=7)
        edges = list(range(0, frames, 5)) + [frames]
        n_seg = len(edges) - 1
        ds = fluoxr.block_moments(video, 6, edges=edges)
        rec = fluoxr.reconstruct(video, 6, window=5, filter=False, psf=np.ones((1, 1)), deconv_iter=1,
                                 ldrc_window=(1, 1))
        assert ds.moments.data.chunks[0] == (1,) * n_seg
        assert ds.mean_image.data.chunks[0] == (1,) * n_seg
        assert rec.sofi.data.chunks[0] == rec.mean_image.data.chunks[0] == (1,) * n_seg
        sizes = _TaskSizes()
        with sizes.callback:
            dask.compute(ds, rec.sofi, rec.mean_image, scheduler="sync")
        largest.append(sizes.max)
        assert sizes.max < 4 * one < n_seg * one
    # a chunk of 7 frames meets at most 3 windows of 5: the largest task does not grow with the frames
    assert largest[0] == largest[1]


def test_block_moments_and_windows_with_many_chunks_per_segment():
    """Segments spanning more chunks than one merge takes are merged in a tree, as the whole-video moments."""
    video = tiny_video((90, 3, 4), dtype=np.uint16, scale=3000, chunks=2)
    x = video.values
    edges = [0, 3, 3, 70, 90]
    ds = assert_chunk_invariant(lambda v: fluoxr.block_moments(v, 4, edges=edges), video, rtol=1e-9)
    for b, (a, e) in enumerate(zip(edges[:-1], edges[1:])):
        if a == e:
            assert np.isnan(ds.moments.isel(block=b).values).all()
            continue
        scaled_close(ds.moments.isel(block=b).values[1:], ref_moments(x[a:e], range(2, 5)), 1e-9)
        np.testing.assert_allclose(ds.mean_image.isel(block=b), x[a:e].mean(0))
    rec = fluoxr.reconstruct(video, 3, window=40, filter=False, psf=np.ones((1, 1)), deconv_iter=1,
                             ldrc_window=(1, 1)).compute()
    assert rec.start.values.tolist() == [0, 40, 80]
    for w, (a, e) in enumerate([(0, 40), (40, 80), (80, 90)]):
        scaled_close(rec.sofi.values[w][None], ref_moments(x[a:e], [3]), 1e-9)


# -------------------------------------------------------------------------------------------- ground truth


@pytest.fixture(scope="module")
def emitters():
    # on_fraction 0.15 keeps every Bernoulli cumulant of orders 2..6 well away from 0
    return fluoxr.datasets.blinking_emitters(2000, (48, 48), n_emitters=4, sigma_px=2.0, on_fraction=0.15,
                                             mean_on_frames=1.5, photons=20000, background=100, seed=3)


def test_cumulant_psf_width_shrinks_as_sqrt_order(emitters):
    video, truth = emitters
    k = fluoxr.cumulants(video, 6).compute()
    for n in range(2, 7):
        widths = fluoxr.psf_width(k.sel(order=n), truth.positions)
        np.testing.assert_allclose(widths, truth.sigma_px / math.sqrt(n), rtol=0.05, err_msg=f"order {n}")


def test_xc_image_width_and_sigma(emitters):
    video, truth = emitters
    xc = fluoxr.xc_image(video).compute()
    assert xc.shape == (95, 95) and xc.y.values[1] == 0.5
    assert float(xc.sigma_px) == pytest.approx(truth.sigma_px, rel=0.02)
    # on the fine grid (coordinates in original pixels) an emitter has width sigma / sqrt(2)
    widths = fluoxr.psf_width(xc, truth.positions, radius_px=8)  # in pixels of the recording
    np.testing.assert_allclose(widths, truth.sigma_px / math.sqrt(2), rtol=0.05)
    given = fluoxr.xc_image(video, sigma_px=2.0).compute()
    np.testing.assert_allclose(given, xc, rtol=0.05, atol=0.05 * float(xc.max()))


# -------------------------------------------------------------------------------------------- lags


def test_lag_moments_across_chunks_smaller_than_the_halo():
    video = tiny_video((26, 3, 4), dtype=np.float64)
    lags = [0, 1, 3, 4, 6]
    chunkings = default_chunkings(26, halo=6) + [(2,) * 13]
    m = assert_chunk_invariant(lambda v: fluoxr.lag_moments(v, lags), video, chunkings=chunkings, rtol=1e-10)
    for s in m.subset.values.tolist():
        sub = tuple(int(i) for i in s.split(","))
        np.testing.assert_allclose(m.sel(subset=s), ref_lag(video.values, lags, sub), rtol=1e-10, atol=1e-12)
    assert m.order.values.tolist() == [len(s.split(",")) for s in m.subset.values]


def test_lag_cumulants():
    video = tiny_video((30, 3, 3), dtype=np.float64)
    lags = [0, 2, 3, 5]
    k = assert_chunk_invariant(lambda v: fluoxr.lag_cumulants(v, lags), video, halo=5, rtol=1e-9)
    x = video.values
    m = {s: ref_lag(x, lags, s) for s in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (0, 1, 2), (0, 1, 2, 3)]}
    np.testing.assert_allclose(k.sel(order=2), m[(0, 1)], rtol=1e-10)
    np.testing.assert_allclose(k.sel(order=3), m[(0, 1, 2)], rtol=1e-10)
    k4 = m[(0, 1, 2, 3)] - m[(0, 1)] * m[(2, 3)] - m[(0, 2)] * m[(1, 3)] - m[(0, 3)] * m[(1, 2)]
    np.testing.assert_allclose(k.sel(order=4), k4, rtol=1e-10)
    # from precomputed moments
    xr.testing.assert_allclose(fluoxr.lag_cumulants(fluoxr.lag_moments(video, lags)).compute(), k)
    xr.testing.assert_allclose(fluoxr.lag_cumulants(fluoxr.lag_moments(video, lags), lags).compute(), k)


def test_lag_cumulants_of_moments_without_attrs():
    """xarray operations can drop attrs: the lags then come from the argument, or the error names it."""
    video = tiny_video((30, 3, 3), dtype=np.float64)
    lags = [0, 2, 3, 5]
    m = fluoxr.lag_moments(video, lags)
    with xr.set_options(keep_attrs=False):
        bare = m * 1.0
    assert "lags" not in bare.attrs
    expected = fluoxr.lag_cumulants(m).compute()
    got = fluoxr.lag_cumulants(bare, lags).compute()
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12)
    assert got.attrs["lags"] == lags and got.order.values.tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="^lags is required"):
        fluoxr.lag_cumulants(bare)
    with pytest.raises(ValueError, match="^lags .* do not match the subsets"):
        fluoxr.lag_cumulants(bare, [0, 1, 2])
    with pytest.raises(ValueError, match="^lags .* differ from the lags the moments were computed with"):
        fluoxr.lag_cumulants(m, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="^lags must"):
        fluoxr.lag_cumulants(bare, [1, 2, 3, 4])
    with pytest.raises(TypeError, match="^lags must"):
        fluoxr.lag_cumulants(bare, 3)


def test_lag_moments_extra_dims():
    video = tiny_video((12, 2, 3, 3), chunks=4, dtype=np.float64)
    m = fluoxr.lag_moments(video, [0, 2]).compute()
    assert m.dims == ("subset", "channel", "y", "x")
    np.testing.assert_allclose(m.isel(subset=0, channel=1), ref_lag(video.values[:, 1], [0, 2], (0, 1)))


# -------------------------------------------------------------------------------------------- XC-SOFI


def test_cross_cumulants_match_pysofi_algorithm():
    video = tiny_video((21, 7, 8), scale=500)
    xc = assert_chunk_invariant(lambda v: fluoxr.cross_cumulants(v, 2), video, rtol=1e-9)
    ref = ref_xc(video.values, 2)
    assert xc.sizes["shift"] == 12 and xc.shape[1:] == (3, 4)
    assert xc.y.values.tolist() == [2, 3, 4]
    for i in range(12):
        np.testing.assert_allclose(xc.isel(shift=i), ref[(int(xc.dy[i]), int(xc.dx[i]))], rtol=1e-9, atol=1e-9)


# -------------------------------------------------------------------------------------------- bleaching


@pytest.fixture(scope="module")
def bleaching():
    video, _ = fluoxr.datasets.blinking_emitters(400, (32, 32), n_emitters=3, photons=3000, background=300,
                                                 bleach_tau_s=2.0, seed=5, chunks=37)
    return video


def test_total_signal_and_blocks(bleaching):
    x = bleaching.values.astype(np.float64)
    sig = fluoxr.total_signal(bleaching).compute()
    np.testing.assert_array_equal(sig.values, x.sum(axis=(1, 2)))
    edges = fluoxr.bleach_blocks(bleaching, fbc=0.2, smooth_kernel=21).compute()
    np.testing.assert_array_equal(edges.values, ks.block_bounds(x.sum(axis=(1, 2)), 0.2, 21))
    assert edges.values[0] == 0 and edges.values[-1] == 400 and len(edges) == 6


def _cut_as_pysofi(video, fbc, smooth_kernel):
    # the edges as pysofi's med_smooth + cut_frames give them, padded with empty trailing blocks
    sig = video.values.astype(np.float64).sum(axis=(1, 2))
    frames = ks.cut_frames(ks.med_smooth(sig, smooth_kernel), fbc)[1]
    out = np.full(math.ceil(1 / fbc) + 1, sig.size)
    out[: frames.size - 1] = frames[:-1]
    return out


def _level_video(level, n=600, seed=0):
    # Poisson frames around a per-frame mean level (a bleaching curve, or a flat one)
    rng = np.random.default_rng(seed)
    return fluoxr.as_video(rng.poisson(level[:, None, None] * np.ones((1, 8, 8))).astype(np.uint16), chunks=100)


def test_bleach_blocks_flat_recording_warns_and_gives_one_block(recwarn):
    # issue 16: cut_frames puts its bounds at fractions of the smoothed signal's own range; on a flat
    # recording that range is noise, and 25 blocks of 1-2 frames came back, bunched where the noise dips
    video = _level_video(np.full(600, 100.0))
    with raise_if_dask_computes():
        edges = fluoxr.bleach_blocks(video, fbc=0.04, smooth_kernel=51)  # lazy: nothing computed, nothing said
    assert not [w for w in recwarn if "fbc" in str(w.message)]
    with pytest.warns(UserWarning, match=r"falls by .*within its noise.*fbc=0.04"):
        values = edges.values
    assert values.tolist() == [0] + [600] * 25
    # bleaching-corrected moments are then the plain ones (one block, its own mean)
    with pytest.warns(UserWarning, match="fbc=0.04"):
        bc = fluoxr.moments(video, 3, bleach_correction=True, smooth_kernel=51).values
    np.testing.assert_allclose(bc, fluoxr.moments(video, 3).values, rtol=1e-12, atol=1e-9)


def test_bleach_blocks_barely_bleaching_recordings():
    # 64 px of 1000 photons: frame-to-frame noise 253, of the 51-frame median 44; at fbc=0.04 the fall must
    # exceed 25 of those (1110, 1.7%): a 1% fall is one block with a warning, a 3% fall is cut as pysofi
    t = np.arange(600)
    small = _level_video(1000 * (1 - 0.01 * t / 599))
    with pytest.warns(UserWarning, match="fbc=0.04"):
        assert fluoxr.bleach_blocks(small, fbc=0.04, smooth_kernel=51).values.tolist() == [0] + [600] * 25
    enough = _level_video(1000 * (1 - 0.03 * t / 599))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edges = fluoxr.bleach_blocks(enough, fbc=0.04, smooth_kernel=51).values
    np.testing.assert_array_equal(edges, _cut_as_pysofi(enough, 0.04, 51))
    assert np.count_nonzero(np.diff(edges)) > 1


def test_bleach_blocks_of_a_bleaching_recording_unchanged(bleaching):
    # a recording that bleaches is cut exactly as pysofi cuts it, without a warning
    for fbc, kernel in ((0.2, 21), (0.25, 31), (0.2, 51)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            edges = fluoxr.bleach_blocks(bleaching, fbc=fbc, smooth_kernel=kernel).values
        np.testing.assert_array_equal(edges, _cut_as_pysofi(bleaching, fbc, kernel))


def test_block_moments_blocks_not_aligned_with_chunks(bleaching):
    x = bleaching.values
    edges = [0, 50, 51, 200, 333, 400]
    ds = assert_chunk_invariant(lambda v: fluoxr.block_moments(v, 4, edges=edges), bleaching, rtol=1e-9)
    for b, (a, e) in enumerate(zip(edges[:-1], edges[1:])):
        m = ref_moments(x[a:e], range(1, 5))
        scaled_close(ds.moments.isel(block=b).values[1:], m[1:], 1e-9)
        k = ref_cumulants({n: m[n - 1] for n in range(1, 5)})
        scaled_close(ds.cumulants.isel(block=b).values[1:], [k[n] for n in (2, 3, 4)], 1e-9)
        np.testing.assert_allclose(ds.mean_image.isel(block=b), x[a:e].mean(0))
    assert ds.start.values.tolist() == edges[:-1] and ds.stop.values.tolist() == edges[1:]


def test_block_average_moments_and_cumulants(bleaching):
    x = bleaching.values
    edges = fluoxr.bleach_blocks(bleaching, fbc=0.25, smooth_kernel=31).values
    blocks = [(a, e) for a, e in zip(edges[:-1], edges[1:]) if e > a]
    ms = [ref_moments(x[a:e], range(1, 5)) for a, e in blocks]
    m_avg = np.mean(ms, axis=0)
    k_avg = np.mean([[ref_cumulants({n: m[n - 1] for n in range(1, 5)})[n] for n in range(1, 5)] for m in ms], axis=0)
    kw = dict(bleach_correction=True, fbc=0.25, smooth_kernel=31)
    m = assert_chunk_invariant(lambda v: fluoxr.moments(v, 4, **kw), bleaching, rtol=1e-9,
                               chunkings=[(400,), (13,) * 30 + (10,), (1,) * 400])
    scaled_close(m.values[1:], m_avg[1:], 1e-9)
    k = fluoxr.cumulants(bleaching, 4, **kw).compute()
    scaled_close(k.values[1:], k_avg[1:], 1e-9)
    np.testing.assert_allclose(k.mean_image, np.mean([x[a:e].mean(0) for a, e in blocks], axis=0))
    assert m.attrs["bleach_correction"] == 1 and m.attrs["fbc"] == 0.25
    # the block-average state keeps running sums, not one image per block
    ds = fluoxr.block_moments(bleaching, 4, fbc=0.25, smooth_kernel=31).compute()
    np.testing.assert_allclose(ds.moments.mean("block"), m, rtol=1e-9)


def test_bleach_correct_matches_pysofi_algorithm(bleaching):
    x = bleaching.values
    edges = fluoxr.bleach_blocks(bleaching, fbc=0.2, smooth_kernel=51).values
    norm = np.empty(x.shape, np.int64)
    for a, e in zip(edges[:-1], edges[1:]):
        if e > a:
            norm[a:e] = np.int_(np.around(x[a:e] - x[a:e].mean(0)))
    ref = norm - norm.min(axis=0)
    out = assert_chunk_invariant(lambda v: fluoxr.bleach_correct(v, fbc=0.2, smooth_kernel=51), bleaching,
                                 chunkings=[(400,), (37,) * 10 + (30,), (1,) * 400])
    assert out.dtype == np.int32 and out.dims == bleaching.dims
    np.testing.assert_array_equal(out.values, ref)


# -------------------------------------------------------------------------------------------- per-frame steps


def test_fourier_interpolate_video():
    video = tiny_video((9, 5, 6), chunks=4)
    video.attrs["pixel_size"] = 0.1
    with raise_if_dask_computes():
        out = fluoxr.fourier_interpolate(video, 3)
    assert out.shape == (9, 13, 16) and out.dtype == np.float64
    np.testing.assert_allclose(out.y.values, np.arange(13) / 3)
    assert out.attrs["pixel_size"] == pytest.approx(0.1 / 3)
    got = out.compute()
    for t in (0, 8):
        np.testing.assert_allclose(got[t], ks.interpolate_frames(video.values[t], 3), rtol=1e-12)
    assert_chunk_invariant(lambda v: fluoxr.fourier_interpolate(v, 2), video)
    # moments after interpolation (pysofi moment_im_with_finterp, without its int64 truncation)
    m = fluoxr.moments(out, 4).compute()
    scaled_close(m.values[1:], ref_moments(got.values, range(2, 5)), 1e-9)


def test_fourier_interpolate_output_chunks_stay_near_twice_the_chunk_option():
    # the output is f**2 larger per frame and float64: input chunks are split so that an output chunk holds
    # about 2 x chunk_mb, whatever the input chunks (memory stays bounded for long recordings)
    video = tiny_video((400, 20, 20), chunks=400)
    per_frame = 39 * 39 * 8
    with fluoxr.set_options(chunk_mb=1):
        out = fluoxr.fourier_interpolate(video, 2)
    sizes = out.data.chunks[0]
    assert sum(sizes) == 400 and max(sizes) == int(2e6 // per_frame)
    assert max(sizes) * per_frame <= 2e6
    with fluoxr.set_options(chunk_mb=1):
        small = fluoxr.fourier_interpolate(video.chunk({"time": 10}), 2)
    assert small.data.chunks[0] == (10,) * 40                    # smaller chunks are kept as they are


def test_fourier_interpolate_image_and_channels():
    img = xr.DataArray(np.random.default_rng(0).random((4, 5)), dims=("y", "x"), coords={"y": [10, 12, 14, 16]})
    out = fluoxr.fourier_interpolate(img, 2)
    np.testing.assert_allclose(out.y.values, [10, 11, 12, 13, 14, 15, 16])
    video = tiny_video((6, 2, 4, 4), chunks=2)
    out = fluoxr.fourier_interpolate(video, 2).compute()
    np.testing.assert_allclose(out[3, 1], ks.interpolate_frames(video.values[3, 1], 2))


def test_noise_filter_chunks_smaller_than_the_halo():
    video = tiny_video((25, 3, 2), dtype=np.float64)
    h = ks.gauss1d_mask((1, 21), 2)
    out = assert_chunk_invariant(lambda v: fluoxr.noise_filter(v), video, halo=ks.filter_halo(25, 21), rtol=1e-12)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(out[:, i, j], ks.filter1d_same(video.values[:, i, j], h), rtol=1e-12)
    even = fluoxr.noise_filter(video.isel(time=slice(0, 24)), [0.1, 0.2, 0.3, 0.4]).compute()
    np.testing.assert_allclose(even[:, 1, 1], ks.filter1d_same(video.values[:24, 1, 1], [0.1, 0.2, 0.3, 0.4]))


def test_deconvsk_and_ldrc_lazy_per_image():
    rng = np.random.default_rng(3)
    stack = xr.DataArray(da.from_array(rng.random((3, 20, 20)), chunks=(2, 20, 20)), dims=("window", "y", "x"))
    psf = ks.gauss2d_mask((9, 9), 1.5)
    with raise_if_dask_computes():
        dec = fluoxr.deconvsk(stack, psf=psf, deconv_iter=3)
        mask = stack.mean("window")
        comp = fluoxr.ldrc(dec, mask=mask, window_size=(5, 5))
        comp2 = fluoxr.ldrc(dec, mask=stack, window_size=(5, 5))
    dec, comp, comp2 = dec.compute(), comp.compute(), comp2.compute()
    for i in range(3):
        np.testing.assert_allclose(dec[i], ks.deconvsk(psf, stack.values[i], 1.5, 3))
        np.testing.assert_allclose(comp[i], ks.ldrc(mask.values, dec.values[i], 1, (5, 5)))
        np.testing.assert_allclose(comp2[i], ks.ldrc(stack.values[i], dec.values[i], 1, (5, 5)))
    plain = fluoxr.ldrc(stack.values[0], mask=np.ones((20, 20)), window_size=(4, 4))
    assert isinstance(plain, xr.DataArray) and plain.dims == ("y", "x")


# -------------------------------------------------------------------------------------------- pipeline


def test_reconstruct_stages(emitters):
    video, _ = emitters
    video = fluoxr.as_video(video.isel(time=slice(0, 600), y=slice(0, 32), x=slice(0, 32)).values, chunks=100)
    psf = ks.gauss2d_mask((15, 15), 2)
    with raise_if_dask_computes():
        ds = fluoxr.reconstruct(video, 4, cumulant=True, window=150, psf=psf, deconv_iter=3, ldrc_window=(9, 9))
    ds = ds.compute()
    assert ds.sofi.dims == ("window", "y", "x") and ds.sizes["window"] == 4
    assert ds.start.values.tolist() == [0, 150, 300, 450]
    k = fluoxr.cumulants(video.isel(time=slice(150, 300)), 4).sel(order=4).compute()
    np.testing.assert_allclose(ds.sofi.isel(window=1), k, rtol=1e-9, atol=1e-9 * float(abs(k).max()))
    filt = fluoxr.noise_filter(ds.sofi, dim="window")
    np.testing.assert_allclose(ds.filtered, filt)
    np.testing.assert_allclose(ds.deconvolved, fluoxr.deconvsk(ds.filtered, psf=psf, deconv_iter=3))
    np.testing.assert_allclose(ds.ldrc, fluoxr.ldrc(ds.deconvolved_filtered, mask=ds.mean_image, window_size=(9, 9)))
    one = fluoxr.reconstruct(video, 2, finterp=2, psf=psf, deconv_iter=2, ldrc_window=(5, 5)).compute()
    assert one.sofi.shape == (1, 63, 63) and one.attrs["noise_filter"] == 0
    np.testing.assert_allclose(one.filtered, one.sofi)  # one image: nothing to filter along


# -------------------------------------------------------------------------------------------- accessor


def test_accessor_delegates():
    video = tiny_video((12, 4, 4))
    xr.testing.assert_allclose(video.fluo.moments(3).compute(), fluoxr.moments(video, 3).compute())
    xr.testing.assert_allclose(video.fluo.cumulants([2]).compute(), fluoxr.cumulants(video, [2]).compute())
    xr.testing.assert_allclose(video.fluo.lag_moments([0, 1]).compute(), fluoxr.lag_moments(video, [0, 1]).compute())
    assert set(video.fluo.sofi_images(2).data_vars) == {"mean_image", "moments", "cumulants"}


# -------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("orders,match", [(0, "orders must be >= 1"), (-2, "orders must be >= 1"),
                                          (2.5, "orders must be an integer"), ([2, 0], "orders must be >= 1"),
                                          ([], "at least one order"), ([2, 2], "repeat"), (21, "<= 20")])
def test_bad_orders(orders, match):
    video = tiny_video()
    with pytest.raises(ValueError, match=match):
        fluoxr.moments(video, orders)
    with pytest.raises(ValueError, match=match):
        fluoxr.cumulants(video, orders)


def test_bad_input_messages():
    video = tiny_video((10, 5, 5))
    with pytest.raises(TypeError, match="orders"):
        fluoxr.moments(video, "6")
    with pytest.raises(ValueError, match="lags must be shorter than the recording"):
        fluoxr.lag_moments(video, [0, 1, 10])
    with pytest.raises(ValueError, match="lags must start with 0"):
        fluoxr.lag_moments(video, [1, 2])
    with pytest.raises(ValueError, match="lags must hold at least two"):
        fluoxr.lag_cumulants(video, [0])
    for fbc in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="fbc must be"):
            fluoxr.moments(video, 4, bleach_correction=True, fbc=fbc)
        with pytest.raises(ValueError, match="fbc must be"):
            fluoxr.bleach_correct(video, fbc=fbc)
    with pytest.raises(ValueError, match="smooth_kernel must be odd"):
        fluoxr.bleach_blocks(video, smooth_kernel=250)
    for f in (0, -1):
        with pytest.raises(ValueError, match="factor must be >= 1"):
            fluoxr.fourier_interpolate(video, f)
    with pytest.raises(ValueError, match="factor must be an integer"):
        fluoxr.fourier_interpolate(video, 1.5)
    image = np.zeros((5, 5))
    for fn in (fluoxr.moments, fluoxr.cumulants, fluoxr.sofi_images, fluoxr.total_signal, fluoxr.bleach_correct,
               fluoxr.xc_image, fluoxr.reconstruct):
        with pytest.raises(ValueError, match="video must be a video"):
            fn(image)
    with pytest.raises(ValueError, match="video must be a video"):
        fluoxr.lag_moments(image, [0, 1])
    with pytest.raises(ValueError, match="video must be a video"):
        fluoxr.cross_cumulants(xr.DataArray(image, dims=("y", "x")))
    with pytest.raises(ValueError, match="select one channel"):
        fluoxr.moments(tiny_video((10, 2, 3, 3)), 4, bleach_correction=True)
    with pytest.raises(ValueError, match="ri_range"):
        fluoxr.cross_cumulants(video, 3)
    with pytest.raises(ValueError, match="whole frames"):
        fluoxr.cross_cumulants(video.chunk({"y": 2}), 1)
    with pytest.raises(ValueError, match="edges must rise"):
        fluoxr.block_moments(video, 2, edges=[0, 5, 3, 10])
    with pytest.raises(ValueError, match="window_size"):
        fluoxr.ldrc(np.zeros((5, 5)), mask=np.zeros((5, 5)), window_size=(6, 2))
    with pytest.raises(ValueError, match="deconv_lambda must be > 1"):
        fluoxr.deconvsk(np.zeros((30, 30)), deconv_lambda=1.0)
    with pytest.raises(ValueError, match="psf of shape"):
        fluoxr.deconvsk(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="dim 'window' is not a dim"):
        fluoxr.noise_filter(video, dim="window")
    with pytest.raises(ValueError, match="bleach_correction works on the whole recording"):
        fluoxr.reconstruct(video, 2, window=5, bleach_correction=True)


def test_reconstruct_and_block_moments_name_the_arguments_given():
    """Checks run before any work and name reconstruct's own arguments, not those of the steps it calls."""
    video = tiny_video((10, 6, 6))
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="^cumulant must be True or False"):
            fluoxr.reconstruct(video, 2, cumulant=bad)
    for bad, err in (((3, 3, 3), ValueError), ("ab", ValueError), ((0, 3), ValueError), ((3, 2.5), ValueError),
                     ((3, "3"), TypeError), ((7, 3), ValueError)):
        with pytest.raises(err, match="^ldrc_window"):
            fluoxr.reconstruct(video, 2, ldrc_window=bad)
    # the window is checked against the interpolated images: 11 x 11 with finterp=2
    assert fluoxr.reconstruct(video, 2, finterp=2, ldrc_window=(11, 11), psf=np.ones((3, 3)),
                             deconv_iter=1).ldrc.shape == (1, 11, 11)
    with pytest.raises(ValueError, match="^ldrc_window"):
        fluoxr.reconstruct(video, 2, finterp=2, ldrc_window=(12, 11))
    with pytest.raises(ValueError, match="^filter must be a finite 1-D kernel"):
        fluoxr.reconstruct(video, 2, window=3, filter=np.ones((2, 2)))
    with pytest.raises(TypeError, match="^filter must be"):
        fluoxr.reconstruct(video, 2, window=3, filter="gauss")
    with pytest.raises(ValueError, match="^deconv_lambda"):
        fluoxr.reconstruct(video, 2, deconv_lambda=1.0)
    for kw, match in ((dict(fbc=0), "^fbc must be"), (dict(fbc=1.5), "^fbc must be"),
                      (dict(smooth_kernel=4), "^smooth_kernel must be odd"),
                      (dict(smooth_kernel=0), "^smooth_kernel must be >= 1")):
        with pytest.raises(ValueError, match=match):
            fluoxr.block_moments(video, 2, edges=[0, 4, 10], **kw)


def test_inputs_are_not_modified():
    x = np.random.default_rng(0).poisson(10, (20, 4, 4)).astype(np.uint16)
    before = x.copy()
    fluoxr.sofi_images(x, 4, bleach_correction=True, fbc=0.5, smooth_kernel=3).compute()
    fluoxr.bleach_correct(x, fbc=0.5, smooth_kernel=3).compute()
    fluoxr.fourier_interpolate(x, 2).compute()
    np.testing.assert_array_equal(x, before)


# -------------------------------------------------------------------------------------------- peer


@pytest.mark.peer
def test_against_pysofi(tmp_path):
    pytest.importorskip("pysofi")
    import contextlib
    import io

    import tifffile
    from pysofi import reconstruction as rec

    x = np.random.default_rng(0).poisson(300, (60, 10, 9)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", x)
    with contextlib.redirect_stdout(io.StringIO()):
        m = rec.calc_moments(str(tmp_path), "m.tif", 4)
        xc = rec.calc_xc_im(str(tmp_path), "m.tif", 1)
    ours = fluoxr.moments(fluoxr.open_video(tmp_path / "m.tif"), 4).compute()
    for n in range(1, 5):
        assert np.all(np.abs(ours.sel(order=n).values - m[n]) < 1 + 1e-12 * np.abs(m[n]))  # pysofi truncates
    oxc = fluoxr.cross_cumulants(fluoxr.open_video(tmp_path / "m.tif"), 1).compute()
    for i in range(oxc.sizes["shift"]):
        np.testing.assert_allclose(oxc.isel(shift=i), xc[(int(oxc.dy[i]), int(oxc.dx[i]))], rtol=1e-9)


def test_every_lazy_function_builds_without_computing():
    video = tiny_video((40, 12, 12), chunks=7)
    stack = fluoxr.moments(video, 3)
    with raise_if_dask_computes():
        built = [
            fluoxr.moments(video, 6), fluoxr.cumulants(video, 6), fluoxr.sofi_images(video, 4),
            fluoxr.moments(video, 4, bleach_correction=True, fbc=0.3, smooth_kernel=5),
            fluoxr.cumulants(video, 4, bleach_correction=True, fbc=0.3, smooth_kernel=5),
            fluoxr.lag_moments(video, [0, 1, 3]), fluoxr.lag_cumulants(video, [0, 1, 3, 4]),
            fluoxr.cross_cumulants(video, 2), fluoxr.xc_image(video), fluoxr.total_signal(video),
            fluoxr.bleach_blocks(video, fbc=0.3, smooth_kernel=5), fluoxr.block_moments(video, 3, fbc=0.3, smooth_kernel=5),
            fluoxr.bleach_correct(video, fbc=0.3, smooth_kernel=5), fluoxr.fourier_interpolate(video, 2),
            fluoxr.noise_filter(video), fluoxr.deconvsk(stack.sel(order=2), psf=fluoxr.gauss2d_mask((9, 9), 1)),
            fluoxr.ldrc(stack, mask=stack.mean_image, window_size=(5, 5)), sofi.mean_image(video), sofi.min_image(video),
            fluoxr.reconstruct(video, 3, window=10, psf=fluoxr.gauss2d_mask((9, 9), 1), deconv_iter=2,
                               ldrc_window=(5, 5)),
        ]
    assert all(isinstance(b, (xr.DataArray, xr.Dataset)) for b in built)


def test_spatially_chunked_blocks_lags_and_bleach_correction():
    video = tiny_video((30, 8, 8), chunks=7)
    split = video.chunk({"y": 3, "x": 5})
    for fn in (lambda v: fluoxr.block_moments(v, 3, edges=[0, 11, 30]),
               lambda v: fluoxr.lag_moments(v, [0, 2, 5]),
               lambda v: fluoxr.bleach_correct(v, fbc=0.3, smooth_kernel=5),
               lambda v: fluoxr.moments(v, 4, bleach_correction=True, fbc=0.3, smooth_kernel=5)):
        xr.testing.assert_allclose(fn(split).compute(), fn(video).compute())
