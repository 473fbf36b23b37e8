"""The GPU code paths, run on the CPU with NumPy (and SciPy) standing in for CuPy (and cupyx.scipy).

Inside ``fluoxr._backend.emulate_device()`` NumPy chunks count as device
chunks: the domain modules build their GPU graphs, and the GPU kernels
(``fluoxr._backend.GPU_KERNELS``) run with NumPy. Every test compares values with the
CPU path, so every line of the GPU paths except the calls that name CuPy
(marked ``# cupy-only``) is checked in CI. ``tests/test_gpu.py`` repeats the
comparisons on a real GPU.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import fluoxr
from fluoxr import _backend
from fluoxr import oscillations as O
from fluoxr.kernels import extract as kextract
from fluoxr._backend import GPU_KERNELS as kg
from fluoxr.kernels import moments as km
from fluoxr.kernels import oscillations as kosc
from fluoxr.kernels import sofi as ks
from fluoxr.kernels import temporal as ktemporal
from fluoxr.testing import assert_chunk_invariant, raise_if_dask_computes, tiny_video


def emulated(func):
    """``func`` built inside the stand-in (graphs are built, and dispatched, at call time)."""
    def run(*args, **kwargs):
        with _backend.emulate_device():
            return func(*args, **kwargs)
    return run


@pytest.fixture
def spy(monkeypatch):
    """``spy(module, name)``: count the calls of a function (to prove that the GPU path ran)."""
    def install(module, name):
        calls = []
        orig = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.append(1)
            return orig(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)
        return calls
    return install


# --------------------------------------------------------------------------------------------
# the backend helpers


def test_backend_dispatch_from_chunk_type():
    v = tiny_video((6, 4, 5))
    assert not _backend.is_device_array(v) and not _backend.is_device_array(v.data)
    assert _backend.array_module(v) is np and _backend.array_module(v.data) is np
    with _backend.emulate_device():
        assert _backend.is_device_array(v) and _backend.is_device_array(v.data._meta)
        # kernels always get the real module of their arrays
        assert _backend.array_module(v.data) is np
        assert _backend.device_xp_name() == "numpy"
    assert not _backend.is_device_array(v)
    assert _backend.device_xp_name() == "cupy"
    import scipy.ndimage
    import scipy.sparse

    assert _backend.ndimage_module(np) is scipy.ndimage and _backend.sparse_module(np) is scipy.sparse
    assert _backend.meta_like(v.data, 2, np.float32).shape == (0, 0)
    assert _backend.to_numpy(np.arange(3)).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="array module must be 'numpy' or 'cupy', got 'jax'"):
        _backend.xp_by_name("jax")


def test_to_device_and_back_is_lazy_and_keeps_values():
    v = tiny_video((12, 5, 6), chunks=5)
    assert fluoxr.to_device(v, "cpu") is not None
    with raise_if_dask_computes():
        on = emulated(fluoxr.to_device)(v, "cuda")
        back = fluoxr.to_device(on, "cpu")
        acc = emulated(lambda x: x.fluo.to_device("cuda"))(v)
    for out in (on, back, acc):
        xr.testing.assert_identical(out.compute(), v.compute())
        assert out.chunks == v.chunks
    ds = fluoxr.sofi_images(v, 3)
    moved = fluoxr.to_device(ds, "cpu")
    xr.testing.assert_allclose(moved.compute(), ds.compute())
    arr = fluoxr.to_device(v.data, "cpu")
    np.testing.assert_array_equal(arr.compute(), v.values)
    np.testing.assert_array_equal(fluoxr.to_device(v.values, "cpu"), v.values)


def test_to_device_moves_numbers_only(monkeypatch):
    # CuPy holds no strings: extraction's "kind" labels stay on the host
    import fluoxr.device as dev

    moved = []
    orig = dev._move
    monkeypatch.setattr(dev, "_move", lambda data, name: moved.append(data.dtype) or orig(data, name))
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=6, shape=(32, 32), n_cells=2)
    ds = fluoxr.extract(video, fluoxr.ROISet.from_suite2p(truth.stat, (32, 32)), neuropil=None)
    out = emulated(fluoxr.to_device)(ds, "cuda")
    xr.testing.assert_identical(out.compute(), ds.compute())
    assert moved and all(np.dtype(d).kind in "biufc" for d in moved)
    assert len(moved) == 1 + 3  # F, and the numeric per-ROI coords y, x, npix


def test_missing_cupy_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if not installed, even where it is
    v = tiny_video((4, 3, 3))
    with pytest.raises(ImportError, match=r'CuPy.*pip install "fluoxr\[gpu\]"'):
        fluoxr.to_device(v, "cuda")
    with pytest.raises(ImportError, match=r'pip install "fluoxr\[gpu\]"'):
        v.fluo.to_device("cuda")
    path = str(tmp_path / "v.zarr")
    fluoxr.save(v, path)
    with pytest.raises(ImportError, match=r'pip install "fluoxr\[gpu\]"'):
        fluoxr.open_video(path, backend="cupy")


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    v, truth = fluoxr.datasets.calcium_neurons(n_frames=8, shape=(32, 32), n_cells=2)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (32, 32))
    with pytest.raises(ImportError, match=r"engine='torch' needs torch.*pip install \"fluoxr\[gpu\]\""):
        fluoxr.extract(v, rois, neuropil=None, engine="torch")


def test_bad_device_arguments():
    v = tiny_video((4, 3, 3))
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\), got 'gpu'"):
        fluoxr.to_device(v, "gpu")
    with pytest.raises(TypeError, match="obj must be an xarray.DataArray, an xarray.Dataset or an array, got list"):
        fluoxr.to_device([1, 2], "cpu")
    with pytest.raises(ValueError, match=r"backend must be one of \('numpy', 'cupy'\), got 'torch'"):
        fluoxr.open_video("nowhere.tif", backend="torch")
    rois = fluoxr.ROISet.from_labels(np.pad(np.ones((1, 1), int), 1))
    with pytest.raises(ValueError, match="engine='cupy' needs a video on the GPU"):
        fluoxr.extract(v, rois, neuropil=None, engine="cupy")
    with pytest.raises(ValueError, match="engine='numba' runs on NumPy chunks but the video is on the GPU"):
        emulated(fluoxr.extract)(v, rois, neuropil=None, engine="numba")
    with pytest.raises(ValueError, match="engine must be one of"):
        fluoxr.extract(v, rois, neuropil=None, engine="jax")


# --------------------------------------------------------------------------------------------
# kernels: the array-module twins against the CPU kernels


@settings(max_examples=40, deadline=None)
@given(t=st.integers(1, 9), order=st.integers(1, 8), batch=st.integers(1, 4), offset=st.sampled_from([0.0, 1e6]),
       seed=st.integers(0, 2**16))
def test_moment_state_matches_cpu(t, order, batch, offset, seed):
    x = offset + np.random.default_rng(seed).normal(0, 3, (t, 3, 4))
    n, mean, M = kg.moment_state(x, order, frames_per_batch=batch)
    n0, mean0, M0 = km.moment_state(x, order)
    assert n == n0 and M.shape == M0.shape
    np.testing.assert_allclose(mean, mean0, rtol=1e-14, atol=1e-14 * (offset + 10))
    # each deviation carries the rounding of the offset data: |d| ~ 4 sigma, error eps * |x|
    err = np.finfo(np.float64).eps * (offset + 20)
    for r in range(M.shape[0]):
        p = r + 2
        np.testing.assert_allclose(M[r], M0[r], rtol=1e-9, atol=10 * t * p * 12.0 ** (p - 1) * err)


def test_moment_merges_match_cpu_and_reference():
    rng = np.random.default_rng(0)
    x = rng.poisson(100, (17, 5, 6)).astype(np.uint16)
    a, b = kg.moment_state(x[:7], 6), kg.moment_state(x[7:], 6)
    merged = kg.merge_states(a, b)
    ref = km.merge_states(km.moment_state(x[:7], 6), km.moment_state(x[7:], 6))
    for u, v in zip(merged[1:], ref[1:]):
        np.testing.assert_allclose(u, v, rtol=1e-12)
    stats = kg.state_to_stats(kg.merge_all([a, b]))
    d = x.astype(np.float64) - x.mean(axis=0)
    for k in range(2, 7):  # the plain NumPy reference
        np.testing.assert_allclose(stats[k], (d**k).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(kg.cumulants_from_moments(stats[1:]), km.cumulants_from_moments(stats[1:]), rtol=1e-12)
    assert kg.merge_states(a, kg.empty_state((5, 6), 6)) is a
    assert np.isnan(kg.state_to_stats(kg.empty_state((2,), 3))).all()
    with pytest.raises(ValueError, match="states must hold at least one state"):
        kg.merge_all([])
    seg = kg.segment_states(x, 3, np.array([0, 5, 12, 20]), 4)
    seg0 = km.segment_states(x, 3, np.array([0, 5, 12, 20]), 4)
    assert sorted(seg) == sorted(seg0) == [0, 1, 2]
    for key in seg:
        np.testing.assert_allclose(seg[key][2], seg0[key][2], rtol=1e-12)
    # order 1: no power sums, only the mean
    n, mean, M = kg.merge_states(kg.moment_state(x[:3], 1), kg.moment_state(x[3:], 1))
    assert M.shape == (0, 5, 6)
    np.testing.assert_allclose(mean, x.mean(axis=0))


def test_interpolate_frames_matches_cpu():
    frames = np.random.default_rng(1).normal(10, 2, (3, 2, 5, 7)).astype(np.float32)
    A = kg.finterp_operator(5, 7, 3, 0, "numpy")
    B = kg.finterp_operator(5, 7, 3, 1, "numpy")
    np.testing.assert_allclose(kg.interpolate_frames(frames, A, B, batch=2), ks.interpolate_frames(frames, 3),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.float16, np.uint8])
@pytest.mark.parametrize("k, spacing, lowmem", [(1, 2, False), (1, 5, True), (3, None, False), (2, 4, False)])
def test_gradient_sign_matches_cpu(dtype, k, spacing, lowmem):
    rng = np.random.default_rng(2)
    block = (100 + 20 * rng.random((12, 2, 6, 7))).astype(dtype)
    block[4] = block[2]  # zero gradients on the next frame but one
    mask = rng.random((6, 7)) > 0.3
    masks = rng.random((5, 2, 6, 7)) > 0.3
    for first, core, n_frames in [(0, (0, 12), 12), (3, (6, 9), 20), (0, (2, 7), 12)]:
        for m in (None, mask):
            got = kg.gradient_sign(block, first, core, n_frames, k=k, spacing=spacing, lowmem=lowmem, mask=m,
                                   batch_bytes=3000)
            ref = kosc.gradient_sign(block, first, core, n_frames, k=k, spacing=spacing, lowmem=lowmem, mask=m)
            np.testing.assert_array_equal(got, ref)
    got = kg.gradient_sign(block, 0, (3, 8), 12, k=k, spacing=spacing, lowmem=lowmem, mask=masks)
    ref = kosc.gradient_sign(block, 0, (3, 8), 12, k=k, spacing=spacing, lowmem=lowmem, mask=masks)
    np.testing.assert_array_equal(got, ref)
    assert kg.gradient_sign(block, 0, (4, 4), 12).shape == (0, 2, 6, 7)
    with pytest.raises(ValueError, match="block holds frames 3..14 but frames 2..8 are needed"):
        kg.gradient_sign(block, 3, (3, 8), 20, k=1)


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)), seed=st.integers(0, 2**16),
       min_size=st.integers(1, 6))
def test_vote_and_labels_match_cpu(shape, seed, min_size):
    rng = np.random.default_rng(seed)
    sign = rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[0.4, 0.15, 0.45])
    votes = kg.neighbour_vote(sign)
    for i in range(shape[0]):
        ref = np.empty(shape[1:], np.int8)
        kosc.neighbour_vote(sign[i], ref)
        np.testing.assert_array_equal(votes[i], ref)
    four = sign.reshape((shape[0], 1) + shape[1:])
    np.testing.assert_array_equal(kg.vote_and_filter(four, min_size), kosc.vote_and_filter(four, min_size))
    np.testing.assert_array_equal(kg.vote_and_filter(four, min_size, n_skip=1),
                                  kosc.vote_and_filter(four, min_size, n_skip=1))


def test_vote_and_filter_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"sign must be \(frames, planes, y, x\)"):
        kg.vote_and_filter(np.zeros((3, 3), np.int8), 1)


def _csr(rng, n_rows, n_pixels):
    indptr = np.r_[0, np.cumsum(rng.integers(0, 6, n_rows))].astype(np.int64)
    indices = rng.integers(0, n_pixels, indptr[-1]).astype(np.int64)
    weights = rng.random(indptr[-1])
    weights[:2] = np.nan if indptr[-1] > 4 else weights[:2]
    return indptr, indices, weights


@pytest.mark.parametrize("engine", ["cupy", "torch"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.bool_])
def test_weighted_sums_match_cpu(engine, dtype):
    if engine == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    csr = _csr(rng, 7, 30)
    frames = (rng.random((11, 30)) * 500).astype(dtype)
    W = kg.sparse_weights(*csr, 30, xp_name="numpy", engine=engine)
    got = kg.weighted_sums(W, frames, batch=4)
    ref = kextract.weighted_sums(*csr, frames)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    with pytest.raises(ValueError, match="engine must be one of"):
        kg.sparse_weights(*csr, 30, xp_name="numpy", engine="jax")


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("sigma, win", [(0.0, 1), (0.0, 5), (2.0, 7), (1.3, 4)])
def test_baseline_filters_match_cpu(sigma, win, nan):
    x = np.random.default_rng(4).normal(100, 10, (3, 40)).astype(np.float32)
    if nan:  # the NaN policy: NaN over the filter's support (maximin), the whole row (percentile)
        x[1, 17] = np.nan
    for left, right in [(True, True), (True, False), (False, True), (False, False)]:
        np.testing.assert_allclose(kg.maximin(x, sigma, win, pad_left=left, pad_right=right),
                                   ktemporal.maximin(x, sigma, win, pad_left=left, pad_right=right), rtol=1e-6)
        np.testing.assert_allclose(kg.gaussian_reflect(x, sigma, pad_left=left, pad_right=right),
                                   ktemporal.gaussian_reflect(x, sigma, pad_left=left, pad_right=right), rtol=1e-12)
    np.testing.assert_allclose(kg.percentile_rows(x, 8.0), np.percentile(x, 8.0, axis=-1, keepdims=True), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# the domain functions: GPU graphs (stand-in) against the CPU graphs


def _sofi_video():
    video, _ = fluoxr.datasets.blinking_emitters(24, (32, 32), n_emitters=2, seed=0)
    return video


@pytest.mark.parametrize("func", ["moments", "cumulants"])
def test_sofi_gpu_path_matches_cpu(func, spy):
    calls = spy(kg, "moment_state")
    video = _sofi_video()
    f = getattr(fluoxr, func)
    cpu = f(video, 6).compute()
    gpu = assert_chunk_invariant(emulated(lambda v: f(v, 6)), video, rtol=1e-9, atol=1e-9 * float(abs(cpu).max()))
    assert calls
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-9 * float(abs(cpu).max()))
    assert gpu.attrs == cpu.attrs


def test_sofi_images_with_channels_and_bleach_correction(spy):
    calls = spy(kg, "segment_states")
    rng = np.random.default_rng(5)
    decay = np.exp(-np.arange(80) / 40)[:, None, None, None]
    video = fluoxr.as_video((1000 * decay + rng.poisson(50, (80, 2, 6, 5))).astype(np.float32), chunks=9,
                            dims=("time", "channel", "y", "x"))
    cpu = fluoxr.sofi_images(video, 4).compute()
    gpu = emulated(fluoxr.sofi_images)(video, 4).compute()
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-9)
    plain = video.isel(channel=0)
    kw = dict(bleach_correction=True, fbc=0.25, smooth_kernel=5)
    cpu = fluoxr.cumulants(plain, [2, 4], **kw).compute()
    gpu = assert_chunk_invariant(emulated(lambda v: fluoxr.cumulants(v, [2, 4], **kw)), plain, rtol=1e-8)
    assert calls
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-9)
    np.testing.assert_array_equal(emulated(fluoxr.bleach_blocks)(plain, fbc=0.25, smooth_kernel=5).values,
                                  fluoxr.bleach_blocks(plain, fbc=0.25, smooth_kernel=5).values)


def test_fourier_interpolation_gpu_path(spy):
    calls = spy(kg, "interpolate_frames")
    video = tiny_video((9, 6, 7), chunks=4)
    cpu = fluoxr.fourier_interpolate(video, 2).compute()
    gpu = assert_chunk_invariant(emulated(lambda v: fluoxr.fourier_interpolate(v, 2)), video, rtol=1e-12)
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-12)
    image = np.random.default_rng(6).random((5, 6))
    xr.testing.assert_allclose(emulated(fluoxr.fourier_interpolate)(image, 3), fluoxr.fourier_interpolate(image, 3))
    assert len(calls) >= 2
    # moments of the interpolated frames (pysofi's moment_im_with_finterp) on the same path
    xr.testing.assert_allclose(emulated(lambda v: fluoxr.moments(fluoxr.fourier_interpolate(v, 2), 4))(video),
                               fluoxr.moments(fluoxr.fourier_interpolate(video, 2), 4), rtol=1e-9)


def _wavy(shape=(23, 12, 14), seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    v = 1000 + 300 * np.sin(2 * np.pi * (t / 9 - (x + 0.5 * y) / 11)) + rng.normal(0, 40, shape)
    return fluoxr.as_video(np.clip(v, 0, None).astype(dtype), fps=0.5, chunks=shape[0])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("lag, start, mask", [(None, 0, None), ("period", 3, "frame"), (None, 5, "video")])
def test_detect_gpu_path_matches_cpu(dtype, lag, start, mask, spy):
    calls = spy(kg, "vote_and_filter")
    video = _wavy(dtype=dtype)
    rng = np.random.default_rng(7)
    m = {None: None, "frame": rng.random(video.shape[1:]) > 0.2,
         "video": fluoxr.as_video((rng.random(video.shape) > 0.2).astype(np.uint8))}[mask]
    kw = dict(period_s=16, min_cluster_size=4, lag=lag, start=start, mask=m)
    cpu = O.detect(video, **kw).compute()
    gpu = assert_chunk_invariant(emulated(lambda v: O.detect(v, **kw)), video, halo=3)
    assert calls
    xr.testing.assert_identical(gpu, cpu)
    assert (cpu > 0).any()


@pytest.mark.parametrize("nonrigid", [False, True])
def test_motion_gpu_path_matches_cpu(nonrigid, spy):
    from fluoxr.testing import moving_video

    calls = spy(kg, "remap_bilinear" if nonrigid else "shift_rigid")
    video, _ = moving_video(n_frames=10, shape=(64, 64), seed=2, chunks=4)
    kw = dict(nonrigid=nonrigid, block_size=(32, 32), bidiphase=0, n_reference_frames=10, return_motion=True)
    reg_cpu, m_cpu = fluoxr.register(video, **kw)
    reg_gpu, m_gpu = emulated(lambda v: fluoxr.register(v, **kw))(video)
    assert not calls
    xr.testing.assert_allclose(m_gpu.compute(), m_cpu.compute())
    xr.testing.assert_allclose(reg_gpu.compute(), reg_cpu.compute(), rtol=1e-5, atol=1e-3)
    assert calls


def test_detect_with_z_planes_and_channels():
    rng = np.random.default_rng(8)
    video = fluoxr.as_video((1000 + 200 * rng.random((9, 2, 2, 8, 9))).astype(np.uint16), fps=1.0, chunks=4)
    kw = dict(period_s=4, min_cluster_size=2)
    xr.testing.assert_identical(emulated(O.detect)(video, **kw).compute(), O.detect(video, **kw).compute())


def test_detect_compat_runs_on_the_cpu(caplog):
    video = _wavy()
    kw = dict(period_s=16, min_cluster_size=4, compat="cellects")
    with caplog.at_level(logging.INFO, logger="fluoxr.device"):
        gpu = emulated(O.detect)(video, **kw)
    assert "detect(compat='cellects') runs on the CPU" in caplog.text
    xr.testing.assert_identical(gpu.compute(), O.detect(video, **kw).compute())


@pytest.mark.parametrize("engine", [None, "torch"])
def test_extract_and_traces_gpu_path_match_cpu(engine, spy):
    if engine == "torch":
        pytest.importorskip("torch")
    calls = spy(kg, "weighted_sums")
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=30, shape=(40, 40), n_cells=4, red_fraction=0.5)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (40, 40))
    kw = dict(neuropil={"min_neuropil_pixels": 60}, engine=engine, batch=7)
    cpu = fluoxr.extract(video, rois, neuropil={"min_neuropil_pixels": 60}).compute()
    gpu = assert_chunk_invariant(emulated(lambda v: fluoxr.extract(v, rois, **kw)), video, rtol=1e-6)
    assert calls
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-6)
    positions = [(5, 6), (20, 30), (39, 0)]
    cpu = fluoxr.traces(video, positions, size=5).compute()
    gpu = emulated(fluoxr.traces)(video, positions, size=5, engine=engine).compute()
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-6)


@pytest.mark.parametrize("method", ["maximin", "constant", "prctile"])
def test_baseline_gpu_path_matches_cpu(method, spy):
    calls = spy(kg, {"maximin": "maximin", "constant": "gaussian_reflect", "prctile": "percentile_rows"}[method])
    F = xr.DataArray(np.random.default_rng(9).normal(100, 10, (4, 50)).astype(np.float32), dims=("roi", "time"),
                     attrs={"fps": 10.0}).chunk({"time": 11})
    kw = dict(method=method, window_s=0.7, sigma_frames=2.0)
    cpu = fluoxr.baseline(F, **kw).compute()
    gpu = assert_chunk_invariant(emulated(lambda tr: fluoxr.baseline(tr, **kw)), F, halo=9, rtol=1e-6)
    assert calls
    xr.testing.assert_allclose(gpu, cpu, rtol=1e-6)


def test_cpu_only_functions_take_the_chunks_to_the_host(caplog):
    video = _sofi_video()
    F = xr.DataArray(np.abs(np.random.default_rng(10).normal(100, 10, (2, 60))).astype(np.float32),
                     dims=("roi", "time"), attrs={"fps": 10.0})
    cases = [
        (lambda: fluoxr.lag_moments(video, [0, 1, 2]), "lag_moments"),
        (lambda: fluoxr.cross_cumulants(video, 1), "cross_cumulants"),
        (lambda: fluoxr.oasis(F, tau_s=0.5), "fluoxr.oasis"),
        (lambda: fluoxr.detrend(F, kind="line", period=20), "fluoxr.detrend"),
        (lambda: fluoxr.noise_filter(video, [0.25, 0.5, 0.25]), "fluoxr.noise_filter"),
    ]
    for build, name in cases:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fluoxr.device"):
            gpu = emulated(build)()
        assert f"{name}" in caplog.text and "runs on the CPU" in caplog.text, name
        xr.testing.assert_allclose(gpu.compute(), build().compute())
    labels = O.detect(_wavy(), period_s=16, min_cluster_size=4)
    pd_cpu = O.track_clusters(labels).compute()
    with caplog.at_level(logging.INFO, logger="fluoxr.device"):
        pd_gpu = emulated(O.track_clusters)(labels).compute()
    assert "track_clusters runs on the CPU" in caplog.text
    assert pd_gpu.equals(pd_cpu)


def test_gpu_graphs_are_lazy_and_save():
    video = _sofi_video()
    with raise_if_dask_computes(), _backend.emulate_device():
        m = fluoxr.moments(video, 6)
        fluoxr.cumulants(video, 4, bleach_correction=True, fbc=0.5, smooth_kernel=3)
        fluoxr.fourier_interpolate(video, 2)
        O.detect(video, period_s=10, min_cluster_size=2, interval_s=1.0)
    assert isinstance(m.data, type(video.data))


def test_save_converts_device_results(tmp_path):
    video = _sofi_video()
    m = emulated(fluoxr.moments)(video, 3)
    path = fluoxr.save(m, str(tmp_path / "m.zarr"))
    xr.testing.assert_allclose(fluoxr.open_result(path).compute(), m.compute())


def test_nan_policy_on_the_gpu_paths():
    rng = np.random.default_rng(11)
    frames = rng.poisson(200, (20, 16, 16)).astype(np.float32)
    frames[7, 3, 4] = np.nan
    video = fluoxr.as_video(frames, fps=5.0, chunks=6)
    for build in (lambda v: fluoxr.sofi_images(v, 4), lambda v: fluoxr.fourier_interpolate(v, 2),
                  lambda v: O.detect(v, period_s=4, min_cluster_size=2),
                  lambda v: fluoxr.traces(v, [(3, 4), (10, 10)], size=3)):
        xr.testing.assert_allclose(emulated(build)(video).compute(), build(video).compute())
    F = fluoxr.traces(video, [(3, 4), (10, 10)], size=3)
    assert np.isnan(F.values[0, 7]) and not np.isnan(F.values[1]).any()
    for method in ("maximin", "constant", "prctile"):
        kw = dict(method=method, window_s=1.0, sigma_frames=1.0)
        xr.testing.assert_allclose(emulated(fluoxr.baseline)(F, **kw).compute(), fluoxr.baseline(F, **kw).compute())
