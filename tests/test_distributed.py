"""Every public lazy operation gives the same answer on process-based distributed workers as on threads.

The recordings are files on disk (TIFF and zarr), so the readers, the kernels
and the reductions all travel to worker processes started with the ``dask``
command line (``cli_cluster`` in conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr import datasets
from fluoxr.testing import assert_results_close
from fluoxr.testing.references import COMPARISONS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    blink, _ = datasets.blinking_emitters(n_frames=120, shape=(32, 32), n_emitters=3, seed=1)
    tifffile.imwrite(d / "blink.tif", blink.values, photometric="minisblack")
    calcium, truth = datasets.calcium_neurons(n_frames=150, shape=(48, 48), n_cells=6, red_fraction=0.5, seed=2)
    fluoxr.save(calcium, d / "calcium.zarr")
    sheet, _ = datasets.oscillating_sheet(n_frames=40, shape=(32, 32), seed=3)
    fluoxr.save(sheet, d / "sheet.zarr")
    return {
        "blink": fluoxr.open_video(d / "blink.tif", fps=100, chunks=17),
        "calcium": fluoxr.open_video(d / "calcium.zarr", chunks={"time": 23}),
        "sheet": fluoxr.open_video(d / "sheet.zarr", chunks={"time": 7}),
        "rois": fluoxr.ROISet.from_suite2p(truth.stat, (48, 48)),
    }


def _calcium_traces(r):
    ds = fluoxr.extract(r["calcium"].isel(channel=0), r["rois"], neuropil={"min_neuropil_pixels": 50})
    return fluoxr.subtract_neuropil(ds)


# name -> builds a lazy result from the recordings
OPS: dict[str, Callable[[dict], object]] = {
    "moments": lambda r: fluoxr.moments(r["blink"], 6),
    "cumulants": lambda r: fluoxr.cumulants(r["blink"], 6),
    "cumulants bleach-corrected": lambda r: fluoxr.cumulants(r["blink"], 4, bleach_correction=True, fbc=0.2),
    "lag moments": lambda r: fluoxr.lag_moments(r["blink"], [0, 3, 5]),
    "cross cumulants": lambda r: fluoxr.cross_cumulants(r["blink"], 1),
    "bleach correct": lambda r: fluoxr.bleach_correct(r["blink"], fbc=0.2),
    "fourier interpolate": lambda r: fluoxr.fourier_interpolate(r["blink"], 2).mean("time"),
    "sofi images": lambda r: fluoxr.sofi_images(r["blink"], 4),
    "extract": lambda r: fluoxr.extract(r["calcium"], r["rois"], neuropil={"min_neuropil_pixels": 50}),
    "traces": lambda r: fluoxr.traces(r["calcium"].isel(channel=0), [(10, 10), (30, 20)], size=5),
    "baseline": lambda r: fluoxr.baseline(_calcium_traces(r), window_s=2, sigma_frames=2),
    "dff": lambda r: fluoxr.dff(_calcium_traces(r), window_s=2, sigma_frames=2),
    "oasis": lambda r: fluoxr.oasis(_calcium_traces(r), tau_s=1.0),
    "normalize": lambda r: fluoxr.normalize(_calcium_traces(r)),
    "detrend": lambda r: fluoxr.detrend(_calcium_traces(r), kind="line", period=30),
}


@pytest.mark.parametrize("name", list(OPS))
def test_same_result_on_process_workers(name, recordings, cli_cluster):
    from distributed import Client

    lazy = OPS[name](recordings)
    expected = lazy.compute(scheduler="threads")
    with Client(cli_cluster.address) as client:
        got = client.compute(lazy).result()
    assert_results_close(got, expected, rtol=1e-6)


def test_roi_features_and_save_on_process_workers(recordings, cli_cluster, tmp_path):
    from distributed import Client

    reference = recordings["calcium"].isel(channel=1).mean("time")
    expected = fluoxr.roi_features(recordings["rois"], reference).compute()
    with Client(cli_cluster.address):
        got = fluoxr.roi_features(recordings["rois"], reference).compute()
        fluoxr.save(fluoxr.moments(recordings["blink"], 4), tmp_path / "m.zarr")
    assert_results_close(got, expected, rtol=1e-6)
    saved = fluoxr.open_result(tmp_path / "m.zarr")
    assert isinstance(saved, xr.DataArray)
    np.testing.assert_allclose(saved.values, fluoxr.moments(recordings["blink"], 4).values, rtol=1e-12)


@pytest.mark.parametrize("name", [name for name, c in COMPARISONS.items() if c.lazy])
def test_registry_operation_on_process_workers_equals_its_reference(name, cli_cluster):
    """Every lazy operation of the reference registry, computed on process workers, equals its NumPy reference."""
    from distributed import Client

    c = COMPARISONS[name]
    video = c.example()
    with Client(cli_cluster.address) as client:
        got = client.compute(c.fluoxr(video)).result()
    c.check(got, c.reference(video.values))
