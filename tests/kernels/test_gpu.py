"""The GPU paths on a real GPU (CuPy), value for value against the CPU paths.

Marked ``gpu``: skipped unless CuPy is installed and finds a CUDA device
(``pip install "fluoxr[gpu]"`` on a machine with an NVIDIA GPU). The same
comparisons run on the CPU with NumPy standing in for CuPy in
``tests/test_gpu_emulated.py``; here the CuPy-specific calls run too, and
every result is checked to be CuPy-backed.

``test_cupy_api_surface`` needs CuPy but no GPU: it checks that every CuPy
function and argument the GPU paths call exists in the installed CuPy.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr import oscillations as O


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, no driver, no device
        return False


needs_gpu = pytest.mark.skipif(not _gpu_available(), reason="needs CuPy and a CUDA GPU")
pytestmark = pytest.mark.gpu


def _on_gpu(obj) -> bool:
    data = obj.data if isinstance(obj, xr.DataArray) else obj
    return type(getattr(data, "_meta", data)).__module__.split(".")[0] == "cupy"


def _host(obj):
    return fluoxr.to_device(obj, "cpu").compute()


def test_cupy_api_surface():
    cupy = pytest.importorskip("cupy")
    import cupyx.scipy.ndimage as ndi
    import cupyx.scipy.sparse as sp

    for name in ("asarray", "empty", "zeros", "full", "concatenate", "pad", "where", "broadcast_to", "bincount",
                 "percentile", "round", "abs", "take", "stack", "from_dlpack", "empty_like"):
        assert hasattr(cupy, name), name
    assert "mode" in inspect.signature(cupy.pad).parameters
    assert "structure" in inspect.signature(ndi.label).parameters
    for f in (ndi.correlate1d, ndi.minimum_filter1d, ndi.maximum_filter1d):
        assert {"axis", "mode"} <= set(inspect.signature(f).parameters)
    assert hasattr(sp, "csr_matrix")
    assert hasattr(cupy.ndarray, "get") and hasattr(cupy.cuda.runtime, "getDeviceCount")


@pytest.fixture
def gpu_video():
    video, _ = fluoxr.datasets.blinking_emitters(200, (64, 64), n_emitters=5, seed=0)
    return video.chunk({"time": 37})


@needs_gpu
def test_to_device_round_trip(gpu_video, tmp_path):
    on = fluoxr.to_device(gpu_video, "cuda")
    assert _on_gpu(on) and on.chunks == gpu_video.chunks
    xr.testing.assert_identical(_host(on), gpu_video.compute())
    xr.testing.assert_identical(_host(gpu_video.fluo.to_device("cuda")), gpu_video.compute())
    path = fluoxr.save(gpu_video, str(tmp_path / "v.zarr"))
    opened = fluoxr.open_video(path, backend="cupy")
    assert _on_gpu(opened)
    xr.testing.assert_equal(_host(opened), gpu_video.compute())


@needs_gpu
@pytest.mark.parametrize("func", ["moments", "cumulants", "sofi_images"])
def test_sofi_on_gpu_equals_cpu(gpu_video, func):
    f = getattr(fluoxr, func)
    gpu = f(fluoxr.to_device(gpu_video, "cuda"), 6)
    assert all(_on_gpu(v) for v in (gpu.data_vars.values() if isinstance(gpu, xr.Dataset) else [gpu]))
    cpu = f(gpu_video, 6).compute()
    xr.testing.assert_allclose(_host(gpu), cpu, rtol=1e-8)


@needs_gpu
def test_sofi_bleach_correction_and_offset_on_gpu(gpu_video):
    video = (gpu_video.astype(np.float64) + 1e6).chunk({"time": 50})
    kw = dict(bleach_correction=True, fbc=0.2, smooth_kernel=11)
    gpu = fluoxr.cumulants(fluoxr.to_device(video, "cuda"), [2, 4, 6], **kw)
    assert _on_gpu(gpu)
    cpu = fluoxr.cumulants(video, [2, 4, 6], **kw).compute()
    xr.testing.assert_allclose(_host(gpu), cpu, rtol=1e-6, atol=1e-6 * float(abs(cpu).max()))


@needs_gpu
def test_fourier_interpolation_on_gpu(gpu_video):
    gpu = fluoxr.fourier_interpolate(fluoxr.to_device(gpu_video.isel(time=slice(0, 40)), "cuda"), 3)
    assert _on_gpu(gpu)
    cpu = fluoxr.fourier_interpolate(gpu_video.isel(time=slice(0, 40)), 3).compute()
    xr.testing.assert_allclose(_host(gpu), cpu, rtol=1e-10, atol=1e-9)


@needs_gpu
@pytest.mark.parametrize("lag", [None, "period"])
def test_detect_on_gpu_equals_cpu(lag):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=60, shape=(96, 96))
    video = video.chunk({"time": 17})
    kw = dict(period_s=60, min_cluster_size=20, mask=truth.mask, lag=lag, start=2)
    gpu = O.detect(fluoxr.to_device(video, "cuda"), **kw)
    assert _on_gpu(gpu)
    cpu = O.detect(video, **kw).compute()
    # integer videos: the frame means are exact sums, so the labels are identical
    xr.testing.assert_identical(_host(gpu), cpu)
    assert (cpu > 0).mean() > 0.05


@needs_gpu
def test_detect_float_video_on_gpu_nearly_equals_cpu():
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=40, shape=(64, 64))
    video = video.astype(np.float32)
    kw = dict(period_s=60, min_cluster_size=20, mask=truth.mask)
    gpu = _host(O.detect(fluoxr.to_device(video, "cuda"), **kw))
    cpu = O.detect(video, **kw).compute()
    # float32 frame means are summed in another order on the GPU: gradients within rounding of 0 may flip
    assert float((gpu != cpu).mean()) < 1e-3


@needs_gpu
@pytest.mark.parametrize("engine", [None, "cupy", "torch"])
def test_extract_on_gpu_equals_cpu(engine):
    if engine == "torch":
        pytest.importorskip("torch")
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=120, shape=(96, 96), n_cells=12, red_fraction=0.5)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (96, 96))
    gpu = fluoxr.extract(fluoxr.to_device(video, "cuda"), rois, engine=engine)
    assert _on_gpu(gpu.F) and _on_gpu(gpu.Fneu)
    cpu = fluoxr.extract(video, rois).compute()
    xr.testing.assert_allclose(_host(gpu), cpu, rtol=1e-6)
    positions = [(10, 12), (50, 50), (95, 0)]
    tr = fluoxr.traces(fluoxr.to_device(video, "cuda"), positions, engine=engine)
    xr.testing.assert_allclose(_host(tr), fluoxr.traces(video, positions).compute(), rtol=1e-6)


@needs_gpu
@pytest.mark.parametrize("method", ["maximin", "constant", "prctile"])
def test_baseline_on_gpu_equals_cpu(method):
    F = xr.DataArray(np.random.default_rng(0).normal(100, 10, (20, 500)).astype(np.float32), dims=("roi", "time"),
                     attrs={"fps": 10.0}).chunk({"time": 70})
    kw = dict(method=method, window_s=3.0, sigma_frames=4.0)
    gpu = fluoxr.baseline(fluoxr.to_device(F, "cuda"), **kw)
    assert _on_gpu(gpu)
    xr.testing.assert_allclose(_host(gpu), fluoxr.baseline(F, **kw).compute(), rtol=1e-6)


@needs_gpu
def test_cpu_only_steps_accept_gpu_input():
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=60, shape=(64, 64), n_cells=5)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (64, 64))
    ds = fluoxr.extract(fluoxr.to_device(video, "cuda"), rois)
    Fc = fluoxr.subtract_neuropil(ds)
    assert _on_gpu(Fc)
    spikes = fluoxr.oasis(Fc - fluoxr.baseline(Fc, window_s=1.0), tau_s=1.0)  # OASIS copies to the host
    assert not _on_gpu(spikes)
    cpu = fluoxr.extract(video, rois)
    Fc0 = fluoxr.subtract_neuropil(cpu)
    ref = fluoxr.oasis(Fc0 - fluoxr.baseline(Fc0, window_s=1.0), tau_s=1.0)
    xr.testing.assert_allclose(spikes.compute(), ref.compute(), rtol=1e-4, atol=1e-3)
