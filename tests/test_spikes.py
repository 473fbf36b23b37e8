"""OASIS: kernel against a pure-Python pool algorithm, laziness, bad input, suite2p, ground truth."""

import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr.kernels.oasis import oasis_rows
from fluoxr.spikes import oasis
from fluoxr.testing import assert_chunk_invariant, raise_if_dask_computes


def _oasis_ref(F, tau, fs):
    # the pool-adjacent-violators algorithm of suite2p's oasis, in plain Python (oracle_suite2p.py)
    g = -1.0 / (tau * fs)
    out = np.zeros_like(F)
    for n, f in enumerate(F.astype(np.float32)):
        v, w, t, length = [], [], [], []
        for it, y in enumerate(f):
            v.append(np.float32(y))
            w.append(np.float32(1))
            t.append(it)
            length.append(np.float32(1))
            while len(v) > 1 and v[-2] * np.exp(g * length[-2]) > v[-1]:
                f1, f2 = np.exp(g * length[-2]), np.exp(2 * g * length[-2])
                wn = w[-2] + w[-1] * f2
                v[-2] = np.float32((v[-2] * w[-2] + v[-1] * w[-1] * f1) / wn)
                w[-2] = np.float32(wn)
                length[-2] = length[-2] + length[-1]
                v.pop(), w.pop(), t.pop(), length.pop()
        v, length = np.array(v, np.float32), np.array(length, np.float32)
        out[n, t[1:]] = v[1:] - v[:-1] * np.exp(g * length[:-1])
    return out


def _calcium(rng, n=4, t=300, tau=1.0, fs=20.0):
    s = (rng.random((n, t)) < 0.03).astype(np.float32)
    c = np.zeros_like(s)
    d = np.exp(-1 / (tau * fs))
    for i in range(t):
        c[:, i] = (c[:, i - 1] * d if i else 0) + s[:, i]
    return s, (c + 0.05 * rng.standard_normal((n, t))).astype(np.float32)


def test_kernel_matches_pure_python(rng):
    _, f = _calcium(rng)
    got = oasis_rows(f, 1.0, 20.0)
    np.testing.assert_allclose(got, _oasis_ref(f, 1.0, 20.0), atol=1e-5)
    assert got.dtype == np.float32 and np.all(got[:, 0] == 0)
    assert oasis_rows(np.zeros((2, 0), np.float32), 1.0, 1.0).shape == (2, 0)


def test_lazy_over_rois_and_recovers_spikes(rng):
    s, f = _calcium(rng, n=6)
    tr = xr.DataArray(f, dims=("roi", "time"), attrs={"fps": 20.0}).chunk({"time": 17})
    with raise_if_dask_computes():
        lazy = oasis(tr, tau_s=1.0)
    assert lazy.dims == ("roi", "time") and lazy.name == "spikes" and lazy.attrs["tau_s"] == 1.0
    out = assert_chunk_invariant(lambda t: oasis(t, tau_s=1.0), tr, rtol=0)
    np.testing.assert_array_equal(out.values, oasis_rows(f, 1.0, 20.0))
    big = out.values > 0.5
    assert (big == (s > 0)).mean() > 0.99
    # time first, extra dims: each trace is deconvolved along time
    two = xr.concat([tr, tr], "channel").transpose("time", "channel", "roi")
    np.testing.assert_array_equal(oasis(two, tau_s=1.0).isel(channel=1).values.T, out.values)
    assert tr.fluo.oasis(tau_s=1.0).equals(oasis(tr, tau_s=1.0)) and fluoxr.oasis is oasis


def test_bad_input(rng):
    tr = xr.DataArray(np.zeros((2, 10), np.float32), dims=("roi", "time"))
    with pytest.raises(ValueError, match="tau_s must be > 0"):
        oasis(tr, tau_s=0, fps=10)
    with pytest.raises(ValueError, match="tau_s must be > 0"):
        oasis(tr, tau_s=-1.0, fps=10)
    with pytest.raises(ValueError, match="fps is required"):
        oasis(tr, tau_s=1.0)
    with pytest.raises(ValueError, match="fps must be > 0"):
        oasis(tr, tau_s=1.0, fps=0)
    with pytest.raises(ValueError, match="must have a 'time' dim"):
        oasis(tr.rename(time="frame"), tau_s=1.0, fps=10)


@pytest.mark.peer
def test_equals_suite2p(rng):
    dcnv = pytest.importorskip("suite2p.extraction.dcnv")
    _, f = _calcium(rng, n=9, t=500)
    for tau, fs in ((1.0, 20.0), (0.7, 12.3)):
        ref = dcnv.oasis(f, batch_size=4, tau=tau, fs=fs)
        tr = xr.DataArray(f, dims=("roi", "time"))
        np.testing.assert_array_equal(oasis(tr, tau_s=tau, fps=fs).values, ref)


def test_ground_truth_spikes():
    from scipy.ndimage import gaussian_filter1d

    from fluoxr.datasets import calcium_neurons

    video, truth = calcium_neurons(n_frames=600, shape=(80, 80), n_cells=10, seed=5, chunks=100)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (80, 80))
    fc = fluoxr.subtract_neuropil(fluoxr.extract(video, rois, neuropil={"min_neuropil_pixels": 150}))
    s = oasis(fc - fluoxr.baseline(fc, window_s=5.0, sigma_frames=3), tau_s=truth.tau_s).values
    true = truth.spikes.values
    r = [np.corrcoef(gaussian_filter1d(np.maximum(a, 0), 2), gaussian_filter1d(b, 2))[0, 1]
         for a, b in zip(s, true) if b.any()]
    assert np.median(r) > 0.9 and min(r) > 0.7, r
