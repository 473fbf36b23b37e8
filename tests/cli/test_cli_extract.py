"""fluoxr extract: stat / labels / positions to zarr, spikes, one-line errors; the calcium demo step."""

import numpy as np
import pytest
import tifffile

import fluoxr
from fluoxr.cli import main


@pytest.fixture
def recording(tmp_path):
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=120, shape=(48, 56), n_cells=4, seed=3)
    path = tmp_path / "rec.tif"
    tifffile.imwrite(path, video.values)
    stat = tmp_path / "stat.npy"
    np.save(stat, np.array(truth.stat, dtype=object), allow_pickle=True)
    return path, stat, video, truth


def test_extract_stat_with_neuropil_and_spikes(recording, tmp_path, capsys, unchanged):
    path, stat, video, truth = recording
    unchanged(path, stat)
    out = tmp_path / "out.zarr"
    argv = ["extract", str(path), "--stat", str(stat), "-o", str(out), "--neuropil", "--spikes", "--tau", "1.0",
            "--fps", "30", "--window-s", "2", "--scheduler", "threads", "--no-progress"]
    assert main(argv) == 0
    assert "wrote F, Fneu, Fc, spikes" in capsys.readouterr().out
    res = fluoxr.open_result(out)
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (48, 56))
    ref = fluoxr.extract(fluoxr.as_video(video.values, fps=30), rois)
    np.testing.assert_allclose(res.F.values, ref.F.values, rtol=1e-6)
    np.testing.assert_allclose(res.Fneu.values, ref.Fneu.values, rtol=1e-6)
    assert res.spikes.dims == ("roi", "time") and res.attrs["fps"] == 30.0
    assert main(argv) == 2  # the output exists: refuse unless --overwrite
    assert "--overwrite" not in capsys.readouterr().out
    assert main(argv + ["--overwrite"]) == 0


def test_extract_labels_and_positions(recording, tmp_path):
    path, _, video, truth = recording
    rois = fluoxr.ROISet.from_suite2p(truth.stat, (48, 56))
    labels = tmp_path / "labels.tif"
    tifffile.imwrite(labels, rois.to_label_image().astype(np.uint16))
    assert main(["extract", str(path), "--labels", str(labels), "-o", str(tmp_path / "l.zarr"),
                 "--scheduler", "threads", "--no-progress"]) == 0
    F = fluoxr.open_result(tmp_path / "l.zarr").F.values
    lab = rois.to_label_image()
    np.testing.assert_allclose(F[0], video.values[:, lab == 1].mean(1), rtol=1e-6)
    csv = tmp_path / "pos.csv"
    csv.write_text("x,y,comment\n5,7,a\n55,47,b\n")
    assert main(["extract", str(path), "--positions", str(csv), "--size", "3", "-o", str(tmp_path / "p.zarr"),
                 "--scheduler", "threads", "--no-progress"]) == 0
    tr = fluoxr.open_result(tmp_path / "p.zarr").F
    np.testing.assert_allclose(tr.values[0], video.values[:, 6:9, 4:7].mean((1, 2)), rtol=1e-6)
    assert tr.y.values.tolist() == [7, 47] and tr.kind.values.tolist() == ["rect", "rect"]


@pytest.mark.parametrize("extra, words", [
    ([], "exactly one of"),
    (["--positions", "P", "--stat", "S"], "exactly one of"),
    (["--positions", "{csv}", "--neuropil"], "--neuropil needs cell ROIs"),
    (["--positions", "{bad}"], "positions[0]"),
    (["--stat", "{stat}", "--spikes"], "--tau must be a positive"),
    (["--stat", "{stat}", "--tau", "1"], "--tau is used with --spikes"),
])
def test_extract_errors(recording, tmp_path, capsys, extra, words):
    path, stat, _, _ = recording
    csv = tmp_path / "ok.csv"
    csv.write_text("y,x\n1,1\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("y,x\n100,1\n")
    extra = [e.format(csv=csv, bad=bad, stat=stat) for e in extra]
    assert main(["extract", str(path), *extra, "-o", str(tmp_path / "o.zarr"), "--scheduler", "threads",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_read_positions(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("3,4\n10,2\n")
    assert fluoxr.read_positions(p).tolist() == [[3, 4], [10, 2]]
    p.write_text("row,col\n3,4\n")
    assert fluoxr.read_positions(p).tolist() == [[3, 4]]
    p.write_text("a,b\n3,4\n")
    with pytest.raises(ValueError, match="columns 'y' and 'x'"):
        fluoxr.read_positions(p)
    p.write_text("y,x\n3.5,4\n")
    with pytest.raises(ValueError, match="integer"):
        fluoxr.read_positions(p)


def test_spike_scores_perfect_and_empty():
    from fluoxr.cli import _spike_scores

    truth = np.zeros((2, 200))
    truth[:, ::37] = 1
    r, f1 = _spike_scores(truth * 3.0, truth)
    assert r == pytest.approx(1.0) and f1 == 1.0
    r, f1 = _spike_scores(np.zeros((2, 200)), truth)
    assert np.isnan(r) and f1 == 0.0
