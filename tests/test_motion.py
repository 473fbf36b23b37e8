"""Motion correction: accuracy on movies with known motion, chunk invariance, laziness, inputs, suite2p.

The synthetic movies (``fluoxr.testing.moving_video``) move a textured field
of view by known subpixel shifts (a Fourier shift, exact) and optionally a
smooth nonrigid warp. suite2p comparisons run in the peer venv and skip
without suite2p.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import fluoxr
from fluoxr.testing import assert_chunk_invariant, moving_video, raise_if_dask_computes


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.fixture(scope="module")
def rigid_movie():
    # 128 px frames, shifts up to 3 px: content entering at the borders is a small part of a frame, as in real data
    return moving_video(n_frames=40, shape=(128, 128), max_shift=3.0, noise=3.0, seed=3)


@pytest.fixture(scope="module")
def nonrigid_movie():
    return moving_video(n_frames=16, shape=(128, 128), max_shift=2.0, nonrigid=1.5, noise=2.0, seed=5, chunks=5)


# --------------------------------------------------------------------------------------------
# accuracy


def test_rigid_subpixel_within_a_tenth_of_a_pixel(rigid_movie):
    video, truth = rigid_movie
    m = fluoxr.estimate_motion(video, bidiphase=0, reference=truth.image.values).compute()
    assert _rms(m.dy.values - truth.dy.values) < 0.1
    assert _rms(m.dx.values - truth.dx.values) < 0.1


def test_rigid_with_computed_reference_up_to_its_position(rigid_movie):
    video, truth = rigid_movie
    m = fluoxr.estimate_motion(video, bidiphase=0).compute()
    ey, ex = m.dy.values - truth.dy.values, m.dx.values - truth.dx.values
    # the computed reference sits somewhere near the frames' mean position: a constant offset, no more
    assert abs(ey.mean()) < 2.5 and abs(ex.mean()) < 2.5
    assert _rms(ey - ey.mean()) < 0.1 and _rms(ex - ex.mean()) < 0.1


def test_whole_pixel_peaks_are_a_third_of_a_pixel_off(rigid_movie):
    # suite2p's rigid step (subpixel=1) rounds: about 0.3 px RMS on subpixel motion; the default does not
    video, truth = rigid_movie
    m = fluoxr.estimate_motion(video, bidiphase=0, subpixel=1, reference=truth.image.values).compute()
    assert np.array_equal(m.dy.values, np.round(m.dy.values))
    assert 0.2 < _rms(m.dy.values - truth.dy.values) < 0.45


def test_nonrigid_blocks_within_a_third_of_a_pixel(nonrigid_movie):
    video, truth = nonrigid_movie
    m = fluoxr.estimate_motion(video, bidiphase=0, nonrigid=True, block_size=(32, 32),
                               reference=truth.image.values).compute()
    by, bx = m.block_y.values.astype(int), m.block_x.values.astype(int)
    assert m.dy_block.dims == ("time", "block") and m.sizes["block"] == 36
    assert _rms(m.dy_block.values - truth.dy_field.values[:, by, bx]) < 0.3
    assert _rms(m.dx_block.values - truth.dx_field.values[:, by, bx]) < 0.3


def test_registered_video_matches_the_still_image(rigid_movie):
    video, truth = rigid_movie
    reg = fluoxr.register(video, bidiphase=0, reference=truth.image.values).compute()
    inner = (slice(None), slice(6, -6), slice(6, -6))
    still = truth.image.values[inner[1:]]
    before = _rms(video.values[inner] - still)
    after = _rms(reg.values[inner] - still)
    assert after < 0.15 * before
    assert reg.dims == video.dims and reg.dtype == np.float32
    xr.testing.assert_identical(reg.coords.to_dataset(), video.coords.to_dataset())
    assert reg.attrs == video.attrs


def _active_movie(moving: bool, n_frames: int = 120, side: int = 96, seed: int = 9):
    """Cells whose brightness follows known traces on a textured background, moved or not; and the truth."""
    from scipy import ndimage as ndi

    from fluoxr.testing import textured_image

    rng = np.random.default_rng(seed)
    big = 2 * side
    background = textured_image((big, big), seed=seed, n_cells=0) * 0.5
    # cells on a jittered grid 14 px apart, apart from each other: bilinear resampling mixes neighbours by
    # up to half a pixel, which costs overlapping cells (r 0.70 without motion) about 0.03 more
    grid = np.arange(side * 0.6, side * 1.4, 14)
    cy, cx = (g.ravel() + rng.uniform(-2, 2, g.size) for g in np.meshgrid(grid, grid, indexing="ij"))
    n_cells = cy.size
    yy, xx = np.mgrid[:big, :big]
    shapes = np.stack([np.exp(-((yy - a) ** 2 + (xx - b) ** 2) / (2 * 2.5**2)) for a, b in zip(cy, cx)])
    spikes = (rng.random((n_cells, n_frames)) < 0.05) * rng.uniform(100, 300, (n_cells, n_frames))
    activity = 50 + np.stack([np.convolve(s, np.exp(-np.arange(30) / 6.0))[:n_frames] for s in spikes])
    shifts = rng.uniform(-3, 3, (n_frames, 2)) if moving else np.zeros((n_frames, 2))
    o = side // 2
    frames = np.empty((n_frames, side, side), np.float32)
    for t in range(n_frames):
        img = background + np.tensordot(activity[:, t], shapes, axes=1)
        moved = np.real(np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(img), shifts[t])))
        frames[t] = moved[o:o + side, o:o + side] + rng.normal(0, 5, (side, side))
    positions = np.c_[cy - o, cx - o].round().astype(int)
    return fluoxr.as_video(frames, fps=10.0, chunks=25), positions, activity, background[o:o + side, o:o + side]


def test_traces_after_registration_as_good_as_without_motion():
    still, positions, activity, _ = _active_movie(moving=False)
    moving, _, _, _ = _active_movie(moving=True)
    # registered onto the motionless movie's mean image, so that the cells are where they are without motion
    registered = fluoxr.register(moving, bidiphase=0, reference=still.mean("time"))

    def r(video):
        tr = fluoxr.traces(video, positions, size=3).values
        return np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(tr, activity)])

    r_still, r_moving, r_registered = r(still), r(moving), r(registered)
    assert np.all(r_registered >= r_still - 0.01), (r_still, r_registered)
    assert r_moving.mean() < r_registered.mean() - 0.05  # motion did hurt, registration repaired it


# --------------------------------------------------------------------------------------------
# laziness and chunking


def test_building_computes_nothing(rigid_movie):
    video, truth = rigid_movie
    with raise_if_dask_computes():
        m = fluoxr.estimate_motion(video, nonrigid=True, block_size=(48, 48))
        reg = fluoxr.apply_motion(video, m)
        reg2, m2 = video.fluo.register(return_motion=True, smooth_sigma_time=1.0)
    assert reg.chunks == video.chunks and reg2.chunks == video.chunks


@pytest.mark.parametrize("kwargs", [dict(), dict(smooth_sigma_time=1.5), dict(nonrigid=True, block_size=(48, 48))])
def test_chunk_invariant(kwargs):
    video, _ = moving_video(n_frames=12, shape=(96, 96), seed=1)
    assert_chunk_invariant(lambda v: fluoxr.estimate_motion(v, n_reference_frames=6, **kwargs), video,
                           halo=5, rtol=1e-6, atol=1e-5)
    assert_chunk_invariant(lambda v: fluoxr.register(v, n_reference_frames=6, **kwargs), video,
                           halo=5, rtol=1e-5, atol=1e-3)


def test_reference_computed_once_and_frames_read_once(monkeypatch):
    import dask

    import fluoxr.motion as M

    calls = []
    real = M._reference_of
    monkeypatch.setattr(M, "_reference_of", lambda *a: calls.append(1) or real(*a))
    video, _ = moving_video(n_frames=20, shape=(48, 48), seed=2, chunks=3)
    reads = []
    source = video.data

    def counted(block, block_info=None):
        reads.append(block_info[0]["chunk-location"][0])
        return block

    video = video.copy(data=source.map_blocks(counted, dtype=source.dtype))
    reg, m = fluoxr.register(video, return_motion=True, n_reference_frames=8, bidiphase=0)
    dask.compute(reg.mean("time"), m)
    assert len(calls) == 1
    # every chunk once for the shifts and their application together, plus the chunks of the 8 sampled frames
    n_chunks = len(video.chunks[0])
    assert sorted(set(reads)) == list(range(n_chunks))
    assert len(reads) <= n_chunks + 8


def test_chunks_longer_than_a_batch():
    # inside a chunk, frames are correlated (and nonrigid fields built) in batches of kernels.motion.BATCH
    from fluoxr.kernels.motion import BATCH

    video, _ = moving_video(n_frames=BATCH + 9, shape=(64, 64), seed=4)
    kw = dict(n_reference_frames=10, nonrigid=True, block_size=(32, 32), smooth_sigma_time=1.0)
    assert_chunk_invariant(lambda v: fluoxr.register(v, return_motion=True, **kw), video,
                           chunkings=[(BATCH + 9,), (BATCH - 1, 10), (5,) * 8 + (1,)], rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------------------------
# applying given shifts


def test_apply_from_table_dict_and_csv(tmp_path, rigid_movie):
    video, truth = rigid_movie
    table = pd.DataFrame({"dy": truth.dy.values, "dx": truth.dx.values})
    a = fluoxr.apply_motion(video, table).compute()
    b = fluoxr.apply_motion(video, {"dy": truth.dy.values, "dx": truth.dx.values}).compute()
    path = tmp_path / "shifts.csv"
    table.to_csv(path, index=False)
    c = fluoxr.apply_motion(video, str(path)).compute()
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.values, c.values, rtol=1e-6)


def test_apply_from_saved_motion(tmp_path, nonrigid_movie):
    video, truth = nonrigid_movie
    m = fluoxr.estimate_motion(video, nonrigid=True, block_size=(32, 32), bidiphase=0)
    fluoxr.save(m, tmp_path / "motion.zarr")
    direct = fluoxr.apply_motion(video, m).compute()
    saved = fluoxr.apply_motion(video, fluoxr.open_result(tmp_path / "motion.zarr")).compute()
    by_path = fluoxr.apply_motion(video, str(tmp_path / "motion.zarr")).compute()
    np.testing.assert_allclose(saved.values, direct.values, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(by_path.values, direct.values, rtol=1e-6, atol=1e-4)


def test_two_channels_registered_on_one(rigid_movie):
    video, truth = rigid_movie
    two = xr.concat([video, video * 2], dim="channel").transpose("time", "channel", "y", "x")
    reg, m = fluoxr.register(two, channel=1, return_motion=True, bidiphase=0)
    reg = reg.compute()
    assert reg.dims == ("time", "channel", "y", "x")
    np.testing.assert_allclose(reg.isel(channel=1).values, 2 * reg.isel(channel=0).values, rtol=1e-5, atol=1e-3)
    one = fluoxr.estimate_motion(video * 2, bidiphase=0).compute()
    np.testing.assert_allclose(m.dy.values, one.dy.values, atol=1e-4)


# --------------------------------------------------------------------------------------------
# suite2p 1.1.0 (peer venv; skipped without it)


def _suite2p_register(frames: np.ndarray, ref: np.ndarray, **settings):
    torch = pytest.importorskip("torch")
    reg = pytest.importorskip("suite2p.registration.register")
    out = reg.register_frames(frames.copy(), ref, f_align_out=np.empty_like(frames), batch_size=100,
                              device=torch.device("cpu"), apply_shifts=False, **settings)
    return out[3]  # yoff, xoff, corrXY, yoff1, xoff1, corrXY1, ...


@pytest.fixture(scope="module")
def int16_movie():
    video, truth = moving_video(n_frames=60, shape=(128, 128), max_shift=3.0, nonrigid=1.0, noise=4.0, seed=11,
                                dtype=np.int16, chunks=13)
    return video, truth


@pytest.mark.peer
def test_rigid_whole_pixel_equals_suite2p(int16_movie):
    video, truth = int16_movie
    ref = np.round(truth.image.values).astype(np.int16)  # suite2p's reference is int16
    yoff, xoff, corr, *_ = _suite2p_register(video.values, ref, nonrigid=False, maxregshift=0.1)
    m = fluoxr.estimate_motion(video, reference=ref, subpixel=1, bidiphase=0, max_shift=0.1).compute()
    same = (m.dy.values == yoff) & (m.dx.values == xoff)
    assert same.mean() >= 0.95, (same.mean(), np.c_[m.dy.values, yoff, m.dx.values, xoff][~same])
    np.testing.assert_allclose(m.corr.values[same], corr[same], rtol=1e-3, atol=1e-4)


@pytest.mark.peer
def test_rigid_subpixel_beats_suite2p(int16_movie):
    # suite2p's rigid step takes the whole-pixel peak; fluoxr's default is subpixel
    video, truth = moving_video(n_frames=40, shape=(128, 128), max_shift=3.0, noise=3.0, seed=3, dtype=np.int16)
    ref = np.round(truth.image.values).astype(np.int16)
    yoff, xoff, *_ = _suite2p_register(video.values, ref, nonrigid=False)
    m = fluoxr.estimate_motion(video, reference=ref, bidiphase=0).compute()
    s2p = _rms(yoff - truth.dy.values), _rms(xoff - truth.dx.values)
    ours = _rms(m.dy.values - truth.dy.values), _rms(m.dx.values - truth.dx.values)
    assert max(ours) < 0.1 and min(s2p) > 0.2, (ours, s2p)


@pytest.mark.peer
def test_nonrigid_blocks_within_half_a_pixel_of_suite2p(int16_movie):
    video, truth = int16_movie
    ref = np.round(truth.image.values).astype(np.int16)
    yoff, xoff, _, yoff1, xoff1, _ = _suite2p_register(video.values, ref, nonrigid=True, block_size=(32, 32),
                                                       maxregshiftNR=5, snr_thresh=1.2, subpixel=10)[:6]
    m = fluoxr.estimate_motion(video, reference=ref, bidiphase=0, nonrigid=True, block_size=(32, 32),
                               max_shift_nonrigid=5, snr_thresh=1.2, subpixel=10).compute()
    # the totals, suite2p's rigid plus block shifts; fluoxr's rigid dy is subpixel but its blocks are
    # measured after the same whole-pixel roll as suite2p's
    for ours, theirs in ((m.dy_block.values, yoff[:, None] + yoff1), (m.dx_block.values, xoff[:, None] + xoff1)):
        diff = np.abs(ours - theirs)
        assert diff.max() <= 0.5 + 1e-5, diff.max()
        assert diff.mean() < 0.05, diff.mean()
