"""Synthetic recordings: deterministic, chunk-invariant, lazy, and their truth matches their pixels."""

import numpy as np
import pytest

import fluoxr
from fluoxr import datasets
from fluoxr.testing import assert_results_close, raise_if_dask_computes


@pytest.mark.parametrize(
    "make",
    [
        lambda chunks: datasets.blinking_emitters(n_frames=40, shape=(32, 30), n_emitters=3, chunks=chunks,
                                                  bleach_tau_s=0.2),
        lambda chunks: datasets.calcium_neurons(n_frames=40, shape=(40, 36), n_cells=4, chunks=chunks,
                                                red_fraction=0.5),
        lambda chunks: datasets.oscillating_sheet(n_frames=40, shape=(24, 28), chunks=chunks),
    ],
    ids=["blinking", "calcium", "sheet"],
)
def test_deterministic_and_chunk_invariant(make):
    with raise_if_dask_computes():
        v1, t1 = make(40)
        v2, t2 = make({"time": 1})
        v3, _ = make(7)
    assert v2.chunks[0] == (1,) * 40 and v3.chunks[0][0] == 7
    a = v1.values
    np.testing.assert_array_equal(a, v2.values)
    np.testing.assert_array_equal(a, v3.values)
    for name in ("states", "spikes", "calcium", "fluorescence", "phase", "expected"):
        if hasattr(t1, name):
            assert_results_close(getattr(t1, name), getattr(t2, name), where=name)
    assert a.std() > 0


def test_seed_changes_data():
    a, _ = datasets.blinking_emitters(n_frames=5, shape=(32, 32), n_emitters=2, seed=1)
    b, _ = datasets.blinking_emitters(n_frames=5, shape=(32, 32), n_emitters=2, seed=2)
    assert not np.array_equal(a.values, b.values)


def test_blinking_truth_matches_pixels():
    video, truth = datasets.blinking_emitters(n_frames=3000, shape=(40, 40), n_emitters=4, photons=3000,
                                              background=50, read_noise=0, seed=3)
    states = truth.states.values
    assert states.shape == (4, 3000)
    # stationary on-fraction and mean on-time of the telegraph process
    assert abs(states.mean() - truth.on_fraction) < 0.05
    v = video.values.astype(float)
    for i, (y, x) in enumerate(truth.positions):
        peak = v[:, int(round(y)), int(round(x))]
        on, off = peak[states[i]], peak[~states[i]]
        assert on.mean() > off.mean() + 100
        assert abs(off.mean() - 50) < 5  # background only (the PSFs do not overlap)
    # one on-emitter adds `photons` in total
    frame_sum = v.sum((1, 2)) - 50 * 40 * 40
    expected = states.sum(0) * 3000
    assert np.corrcoef(frame_sum, expected)[0, 1] > 0.99


def test_blinking_bleaching_decays():
    video, truth = datasets.blinking_emitters(n_frames=400, shape=(64, 64), n_emitters=6, fps=100,
                                              bleach_tau_s=1.0, background=0, read_noise=0, seed=0)
    total = video.sum(("y", "x")).values.astype(float)
    on = truth.states.values.sum(0)
    early = total[:50].sum() / max(on[:50].sum(), 1)
    late = total[-50:].sum() / max(on[-50:].sum(), 1)
    assert late / early == pytest.approx(np.exp(-3.5), rel=0.15)


def test_calcium_truth_and_footprints():
    video, truth = datasets.calcium_neurons(n_frames=600, shape=(64, 64), n_cells=6, fps=30, tau_s=0.5,
                                            neuropil=0, read_noise=0, overlap_fraction=0, seed=4)
    assert len(truth.stat) == 6
    for s in truth.stat:
        assert {"ypix", "xpix", "lam", "med", "npix", "radius", "overlap"} <= set(s)
        assert s["ypix"].size == s["npix"] == s["lam"].size and s["lam"].max() == pytest.approx(1.0)
        assert not s["overlap"].any()
    spikes, calcium, fluo = truth.spikes.values, truth.calcium.values, truth.fluorescence.values
    assert spikes.sum() > 0
    # calcium is the spike train convolved with the exponential kernel
    decay = np.exp(-1 / (0.5 * 30))
    ref = np.zeros_like(calcium)
    for t in range(600):
        ref[:, t] = spikes[:, t] + (decay * ref[:, t - 1] if t else 0)
    np.testing.assert_allclose(calcium, ref, rtol=1e-4, atol=1e-4)
    v = video.values.astype(float)
    for i, s in enumerate(truth.stat):
        trace = v[:, s["ypix"], s["xpix"]] @ (s["lam"] / s["lam"].sum())
        assert np.corrcoef(trace, fluo[i])[0, 1] > 0.95


def test_calcium_red_channel_and_overlaps():
    video, truth = datasets.calcium_neurons(n_frames=20, shape=(64, 64), n_cells=10, red_fraction=0.4,
                                            overlap_fraction=0.3, seed=5)
    assert video.dims == ("time", "channel", "y", "x")
    assert 0 < truth.red.sum() < 10
    assert any(s["overlap"].any() for s in truth.stat)
    red = video.isel(channel=1).mean("time").values
    means = np.array([red[s["ypix"], s["xpix"]].mean() for s in truth.stat])
    assert means[truth.red].min() > means[~truth.red].max()


def test_sheet_truth():
    video, truth = datasets.oscillating_sheet(n_frames=60, shape=(48, 48), base=50000, amplitude=0.2, read_noise=0, seed=6)
    assert 0.3 < truth.mask.mean() < 0.7
    exp = truth.expected.values
    assert set(np.unique(exp[:, ~truth.mask])) == {0}
    assert set(np.unique(exp[:, truth.mask])) == {1, 2}
    v = video.values.astype(float)
    diff = np.diff(v, axis=0)
    rising = diff[:, truth.mask] > 0
    # where the wave is steep, the sign of the frame difference follows the truth despite shot noise
    steep = np.abs(np.cos(truth.phase.values[:-1][:, truth.mask])) > 0.7
    agree = (rising == (exp[:-1][:, truth.mask] == 1))[steep].mean()
    assert agree > 0.9
    assert video.attrs["fps"] == 0.5


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: datasets.blinking_emitters(n_frames=0), "n_frames"),
        (lambda: datasets.blinking_emitters(shape=(3,)), "shape"),
        (lambda: datasets.blinking_emitters(on_fraction=1.0), "on_fraction"),
        (lambda: datasets.blinking_emitters(n_emitters=500, shape=(16, 16)), "place"),
        (lambda: datasets.calcium_neurons(tau_s=0), "tau_s"),
        (lambda: datasets.oscillating_sheet(interval_s=-1), "interval_s"),
        (lambda: datasets.oscillating_sheet(amplitude=2), "amplitude"),
    ],
)
def test_bad_parameters(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_large_recording_is_lazy():
    # 50 GB: building it must be instant and computes nothing
    with raise_if_dask_computes():
        video, _ = datasets.oscillating_sheet(n_frames=400_000, shape=(256, 256))
    assert video.nbytes > 5e10
    assert fluoxr.as_video(video).chunks[0][0] * 256 * 256 * 2 <= 128e6


def test_frame_sized_inputs_enter_the_graph_once():
    import cloudpickle

    sizes = {}
    for n in (40, 400):
        video, _ = datasets.calcium_neurons(n_frames=n, shape=(128, 128), n_cells=5, chunks=10)
        sheet, truth = datasets.oscillating_sheet(n_frames=n, shape=(128, 128), chunks=10)
        sizes[n] = [len(cloudpickle.dumps(dict(x.data.__dask_graph__()))) for x in (video, sheet, truth.expected)]
    for small, large in zip(sizes[40], sizes[400]):
        # 10x the tasks may cost a little per task, never a frame (128 KB) per task
        assert large - small < 36 * 20_000, (small, large)


def _min_distance(points):
    d = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    return d[np.triu_indices(len(points), 1)].min()


@pytest.mark.parametrize("seed", range(21))
def test_blinking_defaults_place_for_every_seed(seed):
    # issue 16: 20 emitters 12 px apart in 64 x 64 used to jam random placement and raise
    _, truth = datasets.blinking_emitters(n_frames=4, seed=seed)
    pos = truth.positions
    assert pos.shape == (20, 2)
    assert _min_distance(pos) >= 12.0 * (1 - 1e-9)
    assert pos.min() >= 4.5 and pos.max() <= 64 - 1 - 4.5
    # deterministic per seed
    _, again = datasets.blinking_emitters(n_frames=4, seed=seed)
    np.testing.assert_array_equal(again.positions, pos)


def test_blinking_placement_that_worked_is_unchanged():
    # random placement still comes first: recordings that could be made before are the same pixels
    # (values from the code before issue 16)
    _, truth = datasets.blinking_emitters(n_frames=4, shape=(32, 32), n_emitters=2, seed=1)
    np.testing.assert_allclose(truth.positions, [[15.760076, 25.410201], [11.360292, 13.813182]], atol=1e-4)


def test_blinking_impossible_request_names_arguments():
    # the centres live in a 54 x 54 px box: no packing of discs puts 40 points 12 px apart there
    with pytest.raises(ValueError, match=r"n_emitters=40 .*min_separation_px=12\.0.*shape=\(64, 64\)"):
        datasets.blinking_emitters(n_frames=4, n_emitters=40)


def test_blinking_request_that_barely_fits():
    # a hexagonal lattice of 12 px holds exactly 30 points in the 54 x 54 px box of centres (6 rows of 5)
    for seed in range(3):
        _, truth = datasets.blinking_emitters(n_frames=4, n_emitters=30, seed=seed)
        assert truth.positions.shape == (30, 2)
        assert _min_distance(truth.positions) >= 12.0 * (1 - 1e-9)
    with pytest.raises(ValueError, match="n_emitters=31"):
        datasets.blinking_emitters(n_frames=4, n_emitters=31)


# --------------------------------------------------------------------------------------------
# motion of the field of view


def _digest(a) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_default_recordings_unchanged_by_the_motion_option():
    # digests of these recordings as fluoxr generated them before `motion=`/`drift=` existed (commit 75b1b9a):
    # without motion every pixel must stay the same, bit for bit
    v, t = datasets.blinking_emitters(n_frames=30, shape=(32, 30), n_emitters=3, seed=4)
    assert (_digest(v.values), _digest(t.states.values), _digest(t.positions)) == (
        "9ede1cdce6354cd5", "86dcae64b6e3048a", "c2bbca5ab6740567")
    assert t.motion is None
    v, t = datasets.calcium_neurons(n_frames=30, shape=(40, 36), n_cells=4, seed=4, red_fraction=0.5)
    assert (_digest(v.values), _digest(t.fluorescence.values)) == ("40694281531d15a2", "5a95236fdf97285c")
    assert t.motion is None


@pytest.mark.parametrize(
    "make",
    [
        lambda chunks: datasets.calcium_neurons(n_frames=30, shape=(40, 36), n_cells=4, chunks=chunks,
                                                red_fraction=0.5, motion="nonrigid", seed=3),
        lambda chunks: datasets.calcium_neurons(n_frames=30, shape=(40, 36), n_cells=4, chunks=chunks, motion="rigid"),
        lambda chunks: datasets.blinking_emitters(n_frames=30, shape=(32, 30), n_emitters=3, chunks=chunks,
                                                  drift=datasets.Motion(step_px=0.3, warp_px=1.0)),
    ],
    ids=["calcium-nonrigid-red", "calcium-rigid", "blinking-warp"],
)
def test_moving_recordings_deterministic_and_chunk_invariant(make):
    with raise_if_dask_computes():
        v1, t1 = make(30)
        v2, t2 = make({"time": 1})
        v3, _ = make(7)
    a = v1.values
    np.testing.assert_array_equal(a, v2.values)
    np.testing.assert_array_equal(a, v3.values)
    np.testing.assert_array_equal(t1.motion.shifts.dy.values, t2.motion.shifts.dy.values)
    assert t1.motion.shifts.dy.std() > 0 and t1.motion.shifts.dx.std() > 0
    np.testing.assert_array_equal(t1.motion.shifts.time.values, v1.time.values)


def test_motion_moves_the_content_by_the_true_shift():
    # a constant shift: the moving recording's mean image is the motionless one moved by (+dy, +dx)
    from scipy import ndimage

    n, shift = 40, (2.3, -1.4)
    still, _ = datasets.calcium_neurons(n_frames=n, shape=(64, 64), n_cells=6, seed=2)
    moving, truth = datasets.calcium_neurons(n_frames=n, shape=(64, 64), n_cells=6, seed=2,
                                             motion=np.tile(shift, (n, 1)))
    m0, m1 = still.values.mean(0), moving.values.mean(0)
    inner = (slice(8, -8), slice(8, -8))

    def err(s):
        return np.abs(ndimage.shift(m0, s, order=3, mode="nearest") - m1)[inner].mean()

    assert err(shift) < 0.1 * err((0, 0))
    assert err(shift) < 0.1 * err((-shift[0], -shift[1]))  # the sign convention
    np.testing.assert_array_equal(truth.motion.shifts.dy.values, np.full(n, shift[0]))


def test_drifting_emitters_are_drawn_at_their_true_positions():
    # per frame, each emitter's centroid is its position moved by the true displacement, warp included
    motion = datasets.Motion(step_px=0.2, tau_s=None, warp_px=1.5, warp_period_s=0.2)
    video, truth = datasets.blinking_emitters(n_frames=40, shape=(64, 64), n_emitters=4, on_fraction=0.5,
                                              photons=50_000, background=0, read_noise=0, drift=motion, seed=5)
    v = video.values.astype(float)
    disp = truth.motion.displacement(truth.positions[:, 0], truth.positions[:, 1])
    assert float(np.abs(disp.dy - truth.motion.shifts.dy).max()) > 0.5  # the warp differs between emitters
    yy, xx = np.mgrid[0:64, 0:64]
    errors = []
    for k, (y0, x0) in enumerate(truth.positions):
        for t in np.flatnonzero(truth.states.values[k]):
            ty, tx = y0 + float(disp.dy[t, k]), x0 + float(disp.dx[t, k])
            w = v[t] * ((yy - ty) ** 2 + (xx - tx) ** 2 < 36)
            errors.append(np.hypot((w * yy).sum() / w.sum() - ty, (w * xx).sum() / w.sum() - tx))
    assert len(errors) > 20 and np.sqrt(np.mean(np.square(errors))) < 0.05


def test_nonrigid_truth_registers_the_moving_recording():
    # frame(r + d(r)) is the motionless frame: resampling the moving frames at r + d(r) with the true field
    # gives back the motionless recording (up to noise and interpolation), the wrong sign does not
    from scipy import ndimage

    kw = dict(n_frames=12, shape=(64, 64), n_cells=8, seed=1, read_noise=0, baseline=4000.0, neuropil=1000.0)
    still, _ = datasets.calcium_neurons(**kw)
    moving, truth = datasets.calcium_neurons(**kw, motion=datasets.Motion(step_px=0.5, warp_px=2.0,
                                                                           warp_period_s=0.3))
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    disp = truth.motion.displacement(yy.ravel(), xx.ravel())
    assert abs(float(disp.dy.mean("point").std())) > 0  # moves
    # the warp averages to zero over the frame: the rigid shifts are the frame's mean displacement
    np.testing.assert_allclose(disp.dy.mean("point"), truth.motion.shifts.dy, atol=1e-9)
    s, m = still.values.astype(float), moving.values.astype(float)
    inner = (slice(10, -10), slice(10, -10))
    good, bad = [], []
    for t in range(12):
        dy, dx = disp.dy[t].values.reshape(64, 64), disp.dx[t].values.reshape(64, 64)
        back = ndimage.map_coordinates(m[t], [yy + dy, xx + dx], order=1)
        wrong = ndimage.map_coordinates(m[t], [yy - dy, xx - dx], order=1)
        good.append(np.abs(back - s[t])[inner].mean())
        bad.append(np.abs(wrong - s[t])[inner].mean())
    assert np.mean(good) < 0.6 * np.mean(bad)


def test_motion_presets_and_path_statistics():
    _, truth = datasets.calcium_neurons(n_frames=3000, shape=(32, 32), n_cells=1, motion="rigid", seed=7)
    dy = truth.motion.shifts.dy.values
    assert dy[0] == 0 and np.abs(dy).max() <= datasets.MOTION_PRESETS["rigid"].max_px
    steps = np.abs(np.diff(dy))
    assert np.median(steps) < 0.3 and steps.max() > 1.0  # jitter with jumps
    _, truth = datasets.blinking_emitters(n_frames=2000, shape=(32, 32), n_emitters=1, drift="drift", seed=7)
    d = truth.motion.shifts
    # the steady drift: 0.2 and -0.15 px/s over 20 s, with a faint wobble
    assert abs(float(d.dy[-1]) - 4.0) < 0.5 and abs(float(d.dx[-1]) + 3.0) < 0.5
    assert truth.motion.warp_px == 0
