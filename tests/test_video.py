import dask.array as da
import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr._video import frames_per_chunk


def test_as_video_numpy_dims_coords_attrs():
    arr = np.arange(5 * 4 * 3, dtype=np.uint16).reshape(5, 4, 3)
    v = fluoxr.as_video(arr, fps=10, pixel_size=0.5)
    assert v.dims == ("time", "y", "x")
    assert isinstance(v.data, da.Array)
    np.testing.assert_array_equal(v.values, arr)
    np.testing.assert_allclose(v.time.values, np.arange(5) / 10)
    assert v.time.attrs["units"] == "s"
    np.testing.assert_array_equal(v.y.values, np.arange(4))
    np.testing.assert_array_equal(v.x.values, np.arange(3))
    assert v.attrs == {"fps": 10.0, "pixel_size": 0.5}


def test_as_video_without_fps_uses_frame_index():
    v = fluoxr.as_video(np.zeros((3, 2, 2)))
    np.testing.assert_array_equal(v.time.values, [0, 1, 2])
    assert v.time.attrs["units"] == "frame"
    assert "fps" not in v.attrs


def test_as_video_default_chunks_are_whole_frames_of_about_16MB():
    # 16 MB since issue 12 (peak memory flat and under half of a 786 MB recording); 96 MB before
    v = fluoxr.as_video(da.zeros((4000, 256, 256), dtype=np.uint16, chunks=(4000, 256, 256)), chunks="auto")
    assert v.chunks[1] == (256,) and v.chunks[2] == (256,)
    assert v.chunks[0][0] == frames_per_chunk(256 * 256 * 2, 4000) == 122
    assert 15e6 <= v.chunks[0][0] * 256 * 256 * 2 <= 16e6
    with fluoxr.set_options(chunk_mb=10):
        v2 = fluoxr.as_video(np.zeros((1000, 64, 64), np.float32))
    assert v2.chunks[0][0] == int(10e6 // (64 * 64 * 4)) == 610


def test_as_video_keeps_dask_chunks_unless_asked():
    arr = da.zeros((10, 4, 4), chunks=(3, 4, 4))
    assert fluoxr.as_video(arr).chunks[0] == (3, 3, 3, 1)
    assert fluoxr.as_video(arr, chunks=5).chunks[0] == (5, 5)
    assert fluoxr.as_video(arr, chunks={"time": 2, "y": 2}).chunks[:2] == ((2,) * 5, (2, 2))


def test_as_video_four_and_five_dims_and_reordering():
    arr = np.zeros((6, 2, 5, 4))
    # a 4-D layout cannot be guessed ((t, c, y, x), (t, y, x, c) and (t, z, y, x) all exist): dims= is required
    with pytest.raises(ValueError, match=r"dims=\('time', 'y', 'x', 'channel'\).*dims=\('time', 'channel'"):
        fluoxr.as_video(arr)
    v = fluoxr.as_video(arr, dims=("time", "channel", "y", "x"))
    assert v.dims == ("time", "channel", "y", "x")
    v = fluoxr.as_video(arr, dims=("time", "y", "x", "channel"))
    assert v.dims == ("time", "channel", "y", "x") and v.shape == (6, 4, 2, 5)
    v = fluoxr.as_video(np.zeros((5, 4, 6, 2)), dims=("y", "x", "time", "channel"))
    assert v.dims == ("time", "channel", "y", "x") and v.shape == (6, 2, 5, 4)
    v = fluoxr.as_video(np.zeros((3, 2, 2, 5, 4)))
    assert v.dims == ("time", "z", "channel", "y", "x")


def test_as_video_dataarray_keeps_time_coordinate_of_a_slice():
    v = fluoxr.as_video(np.zeros((10, 2, 2)), fps=5)
    part = fluoxr.as_video(v.isel(time=slice(4, 8)))
    np.testing.assert_allclose(part.time.values, [0.8, 1.0, 1.2, 1.4])
    assert part.attrs["fps"] == 5.0


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(array=np.zeros((4, 4))), ValueError, "single image"),
        (dict(array=np.zeros((2, 3, 4)), fps=0), ValueError, "fps"),
        (dict(array=np.zeros((2, 3, 4)), fps=-1), ValueError, "fps"),
        (dict(array=np.zeros((2, 3, 4)), fps="fast"), TypeError, "fps"),
        (dict(array=np.zeros((2, 3, 4)), pixel_size=0), ValueError, "pixel_size"),
        (dict(array=np.zeros((0, 3, 4))), ValueError, "frame"),
        (dict(array=np.array([["a"]] * 3)), ValueError, "array"),
        (dict(array=np.zeros((2, 3, 4), dtype=complex)), TypeError, "real numbers"),
        (dict(array="movie.tif"), TypeError, "array"),
        (dict(array=np.zeros((2, 3, 4)), dims=("t", "y", "x")), ValueError, "time"),
        (dict(array=np.zeros((2, 3, 4)), chunks=0), ValueError, "chunks"),
        (dict(array=np.zeros((2, 3, 4)), chunks={"frames": 2}), ValueError, "chunks"),
    ],
)
def test_as_video_bad_input(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        fluoxr.as_video(**kwargs)


def test_check_whole_frames_message_says_how_to_rechunk():
    from fluoxr._video import check_video

    v = fluoxr.as_video(np.zeros((4, 6, 6)), chunks={"time": 2, "y": 3})
    with pytest.raises(ValueError, match=r"video is chunked along \['y'\].*chunk\(\{'y': -1, 'x': -1\}\)"):
        check_video(v, whole_frames=True)
    check_video(v.chunk({"y": -1}), whole_frames=True)


def test_check_video_rejects_images_and_wraps_arrays():
    from fluoxr._video import check_video

    with pytest.raises(ValueError, match="video must be a video"):
        check_video(xr.DataArray(np.zeros((3, 3)), dims=("y", "x")))
    with pytest.raises(TypeError, match="video must be a video"):
        check_video([1, 2, 3])
    assert check_video(np.zeros((2, 3, 3))).dims == ("time", "y", "x")
    with pytest.raises(ValueError, match="at least 3 frame"):
        check_video(np.zeros((2, 3, 3)), min_frames=3)


def test_options_context_and_validation():
    assert fluoxr.get_options()["trace_window"] == "rect"
    with fluoxr.set_options(trace_window="pixel"):
        assert fluoxr.get_options()["trace_window"] == "pixel"
        with fluoxr.set_options(trace_window="disc"):
            assert fluoxr.get_options()["trace_window"] == "disc"
        assert fluoxr.get_options()["trace_window"] == "pixel"
    assert fluoxr.get_options()["trace_window"] == "rect"
    with pytest.raises(ValueError, match="trace_window"):
        fluoxr.set_options(trace_window="circle")
    with pytest.raises(ValueError, match="unknown option"):
        fluoxr.set_options(colour="red")
    with pytest.raises(ValueError, match="chunk_mb"):
        fluoxr.set_options(chunk_mb=0)


def test_check_video_puts_time_first():
    import xarray as xr

    from fluoxr._video import check_video

    a = fluoxr.as_video(np.random.default_rng(0).random((30, 5, 6)), chunks=7)
    both = xr.concat([a, 2 * a], dim="channel")  # xarray puts the new dim first
    assert both.dims == ("channel", "time", "y", "x")
    assert check_video(both).dims == ("time", "channel", "y", "x")
    m = fluoxr.moments(both, 2)
    assert m.dims == ("order", "channel", "y", "x")
    np.testing.assert_allclose(m.sel(order=2, channel=1).values, 4 * a.var("time").values, rtol=1e-12)
    labels = fluoxr.oscillations.detect(both.transpose("y", "x", "channel", "time"), period_s=5, interval_s=1,
                                        min_cluster_size=1)
    assert labels.dims == ("time", "y", "x")
