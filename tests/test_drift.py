"""Drift correction of long recordings: block means registered, shifts interpolated to every frame, applied lazily."""

import numpy as np
import pytest

import fluoxr
from fluoxr import datasets
from fluoxr.drift import block_edges, interpolate_shifts
from fluoxr.testing import assert_chunk_invariant, raise_if_dask_computes


def test_block_edges():
    assert block_edges(1000, 250).tolist() == [0, 250, 500, 750, 1000]
    assert block_edges(1100, 250).tolist() == [0, 250, 500, 750, 1100]  # a tail of 100 < 125 joins the last
    assert block_edges(1130, 250).tolist() == [0, 250, 500, 750, 1000, 1130]
    assert block_edges(10, 500).tolist() == [0, 10]


def test_linear_interpolation_is_np_interp_inside_and_continues_the_end_slopes():
    rng = np.random.default_rng(0)
    centres = np.array([49.5, 149.5, 249.5, 349.5])
    shifts = rng.normal(size=(4, 2))
    frames = np.arange(400)
    out = interpolate_shifts(frames, centres, shifts, "linear")
    inside = (frames >= centres[0]) & (frames <= centres[-1])
    for j in range(2):
        np.testing.assert_allclose(out[inside, j], np.interp(frames[inside], centres, shifts[:, j]))
    # a steady drift (shifts linear in time) is recovered exactly, ends included
    steady = 0.01 * centres[:, None] * np.array([1.0, -2.0])
    np.testing.assert_allclose(interpolate_shifts(frames, centres, steady), 0.01 * frames[:, None] * [1.0, -2.0],
                               atol=1e-12)


def test_cubic_interpolation_reproduces_a_cubic_and_falls_back_to_linear():
    centres = np.array([10.0, 30.0, 55.0, 70.0, 95.0])
    poly = np.polynomial.Polynomial([0.3, -0.02, 4e-4, -3e-6])
    frames = np.arange(0, 110)
    # a not-a-knot spline through samples of a cubic is that cubic (also where it extrapolates)
    np.testing.assert_allclose(interpolate_shifts(frames, centres, poly(centres)[:, None], "cubic")[:, 0],
                               poly(frames), atol=1e-10)
    three = centres[:3]
    np.testing.assert_allclose(interpolate_shifts(frames, three, poly(three)[:, None], "cubic"),
                               interpolate_shifts(frames, three, poly(three)[:, None], "linear"))
    assert np.all(interpolate_shifts(frames, centres[:1], np.array([[1.5, -2.0]])) == [1.5, -2.0])


def _drifting(n_frames=1200, seed=3, **kw):
    kw = dict(shape=(48, 48), n_emitters=10, sigma_px=1.5, on_fraction=0.2, photons=3000, background=50,
              drift=datasets.Motion(step_px=0.003, tau_s=None, velocity_px_per_s=(0.3, -0.25), max_px=np.inf),
              seed=seed) | kw
    return datasets.blinking_emitters(n_frames, **kw)


def _rms_after_offset(est, true):
    # the estimate is relative to the first block's mean, the truth to the motionless frame: a constant apart
    d = np.asarray(est) - np.asarray(true)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_drift_matches_the_truth(interpolation):
    video, truth = _drifting()
    with raise_if_dask_computes():
        drift = fluoxr.estimate_drift(video, block_frames=150, interpolation=interpolation)
    drift = drift.compute()
    true = truth.motion.shifts
    assert float(np.ptp(true.dy.values)) > 3  # it really drifts
    for k in ("dy", "dx"):
        assert _rms_after_offset(drift[k], true[k]) < 0.15, k
    assert drift.sizes["block"] == 8 and drift.dy.sizes["time"] == 1200
    assert abs(float(drift.block_dy[0])) < 0.05  # the reference is the first block's mean


def _truth_image(truth, order, offset, shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    s = truth.sigma_px / np.sqrt(order)
    return sum(np.exp(-((yy - y - offset[0]) ** 2 + (xx - x - offset[1]) ** 2) / (2 * s**2))
               for y, x in truth.positions)


def test_sofi_of_the_drift_corrected_recording_is_sharp():
    video, truth = _drifting()
    drift = fluoxr.estimate_drift(video, block_frames=150).compute()
    corrected = fluoxr.apply_motion(video, drift)
    plain = fluoxr.sofi_images(video, 3).cumulants.compute()
    fixed = fluoxr.sofi_images(fluoxr.drift_correct(video, block_frames=150), 3).cumulants.compute()
    np.testing.assert_allclose(fixed, fluoxr.sofi_images(corrected, 3).cumulants.compute(), rtol=1e-6, atol=1e-6)
    # where the emitters are in the corrected recording: where they were at the first block's centre
    offset = (float((truth.motion.shifts.dy - drift.dy).mean()), float((truth.motion.shifts.dx - drift.dx).mean()))
    # orders 2 and 3 (positive at every emitter of on-fraction 0.2; the 4th cumulant changes sign near it)
    for order in (2, 3):
        ideal = _truth_image(truth, order, offset, video.shape[1:]).ravel()
        r_plain = np.corrcoef(ideal, plain.sel(order=order).values.ravel())[0, 1]
        r_fixed = np.corrcoef(ideal, fixed.sel(order=order).values.ravel())[0, 1]
        assert r_fixed > 0.97 and r_fixed > r_plain + 0.2, (order, r_plain, r_fixed)
    # the spots are as narrow as a motionless recording's: sigma / sqrt(2) for the second order
    widths = fluoxr.psf_width(fixed.sel(order=2), truth.positions + np.array(offset), radius_px=5)
    widths_plain = fluoxr.psf_width(plain.sel(order=2), truth.positions + np.array(offset), radius_px=5)
    assert abs(np.nanmedian(widths) / (truth.sigma_px / np.sqrt(2)) - 1) < 0.1
    assert np.nanmedian(widths_plain) > 1.3 * np.nanmedian(widths)


def test_drift_correct_is_lazy_and_chunk_invariant():
    video, _ = _drifting(n_frames=120, shape=(32, 32), n_emitters=4)
    assert_chunk_invariant(lambda v: fluoxr.drift_correct(v, block_frames=40), video.astype(np.float32),
                           rtol=1e-5, atol=1e-4)
    assert_chunk_invariant(lambda v: fluoxr.estimate_drift(v, block_frames=25, interpolation="cubic")[["dy", "dx"]],
                           video, atol=1e-9)


def test_accessor_and_attrs():
    video, _ = _drifting(n_frames=120, shape=(32, 32), n_emitters=4)
    out = video.fluo.drift_correct(block_frames=40)
    assert out.dims == video.dims and out.dtype == np.float32 and out.attrs["fps"] == video.attrs["fps"]
    assert out.attrs["drift_block_frames"] == 40
    drift = video.fluo.estimate_drift(block_frames=40)
    assert drift.attrs["interpolation"] == "linear" and drift.sizes["block"] == 3


def test_reference_choices():
    video, truth = _drifting(n_frames=600)
    first = fluoxr.estimate_drift(video, block_frames=100).compute()
    middle = fluoxr.estimate_drift(video, block_frames=100, reference="middle").compute()
    assert abs(float(middle.block_dy[3])) < 0.05 and abs(float(middle.block_dy[0])) > 0.5
    # another reference moves every shift by the same constant
    for k in ("dy", "dx"):
        assert _rms_after_offset(middle[k], first[k]) < 0.1


def test_image_reference():
    video, _ = _drifting(n_frames=300)
    first = fluoxr.estimate_drift(video, block_frames=100).compute()
    image = fluoxr.estimate_drift(video, block_frames=100, reference=first.reference.values).compute()
    np.testing.assert_allclose(image.dy, first.dy, atol=1e-4)


def test_two_channels_registered_on_one_and_moved_together():
    video, truth = datasets.calcium_neurons(n_frames=200, shape=(48, 48), n_cells=6, red_fraction=0.5,
                                            motion=np.tile([1.5, -2.0], (200, 1)) * np.linspace(0, 1, 200)[:, None])
    drift = fluoxr.estimate_drift(video, block_frames=50, channel=1).compute()  # the static red channel
    true = truth.motion.shifts
    for k in ("dy", "dx"):
        assert _rms_after_offset(drift[k], true[k]) < 0.15
    out = fluoxr.drift_correct(video, block_frames=50, channel=1)
    assert out.dims == video.dims
    # the static red channel is moved back: its mean is close to its first block's mean (the reference's
    # position), far closer than the drifting recording's mean is
    first = out.isel(channel=1, time=slice(0, 50)).mean("time").values
    fixed = np.abs(out.isel(channel=1).mean("time").values - first)[6:-6, 6:-6].mean()
    raw = np.abs(video.isel(channel=1).mean("time").values - first)[6:-6, 6:-6].mean()
    assert fixed < 0.5 * raw, (fixed, raw)
    # and the functional channel by the same shifts
    alone = fluoxr.apply_motion(video.isel(channel=0), drift[["dy", "dx"]])
    np.testing.assert_allclose(out.isel(channel=0).values, alone.values, rtol=1e-5, atol=1e-3)
