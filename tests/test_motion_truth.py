"""Registration scored on synthetic recordings with known motion (fluoxr.datasets' ``motion=``): shifts against
the true ones, and traces of the registered recording against those of the same recording without motion."""

import dask
import numpy as np
import pytest

import fluoxr
from fluoxr import datasets
from fluoxr.cli.demo import _active_corr, _offset_removed


def _recordings(motion, n_frames=400, seed=4):
    kw = dict(n_frames=n_frames, shape=(96, 96), n_cells=16, seed=seed)
    moving, truth = datasets.calcium_neurons(motion=motion, **kw)
    still, _ = datasets.calcium_neurons(**kw)
    return moving, still, truth


def test_rigid_registration_matches_the_truth_and_gives_back_the_motionless_traces():
    moving, still, truth = _recordings("rigid")
    true = truth.motion.shifts
    assert float(np.ptp(true.dy.values)) > 2 and float(np.ptp(true.dx.values)) > 2  # jumps of pixels
    motion = fluoxr.estimate_motion(moving, bidiphase=0).compute()
    aligned, rms = _offset_removed(motion, true.dy.values, true.dx.values)
    assert rms < 0.1 * np.sqrt(2)  # within 0.1 px RMS per axis
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (96, 96))
    # the registered view is lazy: the traces are computed from it, no registered copy exists
    f_reg, f_raw, f_still = dask.compute(*[fluoxr.extract(v, rois).F for v in
                                           (fluoxr.apply_motion(moving, aligned), moving, still)])
    tf = truth.fluorescence.values
    r_reg, r_raw, r_still = (float(np.median(_active_corr(f.values, tf))) for f in (f_reg, f_raw, f_still))
    assert abs(r_reg - r_still) < 0.01, (r_reg, r_still)
    assert r_raw < r_still - 0.02  # the motion did hurt the raw traces
    # per cell too: no cell loses more than a little
    assert np.all(_active_corr(f_reg.values, tf) > _active_corr(f_still.values, tf) - 0.03)


def test_register_returns_the_lazy_view_and_its_shifts():
    moving, still, truth = _recordings("rigid", n_frames=200)
    registered, motion = fluoxr.register(moving, return_motion=True, bidiphase=0)
    reg_mean, raw_mean, still_mean, motion = dask.compute(registered.mean("time"), moving.mean("time"),
                                                         still.mean("time"), motion)
    # registered onto a reference a constant offset from the motionless frame: the mean image is as sharp
    # (same spread of its values) as the motionless one, and sharper than the raw mean
    sharp = lambda img: float(np.std(np.asarray(img)[10:-10, 10:-10]))  # noqa: E731
    # (bilinear interpolation smooths a little)
    assert sharp(reg_mean) > 0.9 * sharp(still_mean) and sharp(raw_mean) < 0.95 * sharp(reg_mean)


def test_nonrigid_block_shifts_match_the_true_displacement_at_the_block_centres():
    moving, _, truth = _recordings("nonrigid", n_frames=150, seed=5)
    motion = fluoxr.estimate_motion(moving, nonrigid=True, block_size=(48, 48), bidiphase=0).compute()
    disp = truth.motion.displacement(motion.block_y.values, motion.block_x.values)
    assert float(np.abs(disp.dy - truth.motion.shifts.dy).max()) > 0.5  # blocks move differently
    err_y = motion.dy_block.values - disp.dy.values
    err_x = motion.dx_block.values - disp.dx.values
    # relative to the reference, which is itself a mean of warped frames: one constant offset per block
    err_y -= err_y.mean(0)
    err_x -= err_x.mean(0)
    assert np.sqrt(np.mean(err_y**2 + err_x**2) / 2) < 0.4
