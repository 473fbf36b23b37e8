"""Data safety: no output can delete, overwrite or mix anyone's data; readers fail loudly, naming the file.

Every test runs in its own temporary directory (as working directory too, where
a mistake could delete it), and every test that has an input checks that the
input's bytes (sha256) are unchanged at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import cloudpickle
import dask
import numpy as np
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr.io import safety as _outputs
from fluoxr import io as fio
from fluoxr.cli import main as cli_main
from fluoxr.io import _RawReader

from conftest import file_digest


def _sha256(path) -> str:
    """SHA-256 of a file, or of every file (and its name) below a folder."""
    return file_digest(os.fspath(path))


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A temporary working directory holding one input TIFF; yields (folder, tif, its sha256, frames)."""
    monkeypatch.chdir(tmp_path)
    frames = np.random.default_rng(5).integers(0, 3000, (24, 12, 10)).astype(np.uint16)
    tif = tmp_path / "in.tif"
    tifffile.imwrite(tif, frames, photometric="minisblack")
    digest = _sha256(tif)
    yield tmp_path, tif, digest, frames
    assert _sha256(tif) == digest, "the input was modified"
    # a lock is never left behind by a test that finished its writes
    with _outputs._HELD_GUARD:
        _outputs._HELD.clear()


def _snapshot(folder) -> dict[str, str]:
    return {os.path.relpath(os.path.join(r, n), folder): _sha256(os.path.join(r, n))
            for r, _, names in os.walk(folder) for n in names}


# -- 1. output paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["", " ", ".", "./", "..", "{cwd}", "{parent}"])
def test_save_refuses_paths_that_would_delete_a_directory(work, target):
    folder, tif, _, _ = work
    before = _snapshot(folder)
    v = fluoxr.open_video(tif)
    path = target.format(cwd=os.getcwd(), parent=os.path.dirname(os.getcwd()))
    for kwargs in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match="path"):
            fluoxr.save(v * 2, path, **kwargs)
    assert _snapshot(folder) == before


def test_cli_with_an_unset_output_variable_touches_nothing(work):
    folder, tif, _, _ = work
    before = _snapshot(folder)
    r = subprocess.run([sys.executable, "-m", "fluoxr.cli", "sofi", str(tif), "-o", "", "--overwrite",
                        "--scheduler", "threads", "--no-progress"], capture_output=True, text=True, cwd=folder,
                       timeout=300)
    assert r.returncode == 2 and "-o is empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _snapshot(folder) == before


def test_save_refuses_an_input_reached_through_links(work):
    folder, tif, _, frames = work
    link = folder / "link.tif"
    link.symlink_to(tif)
    hard = folder / "hard.tif"
    os.link(tif, hard)
    v = fluoxr.open_video(link)
    for target in (tif, link, hard):
        with pytest.raises(ValueError, match="is an input"):
            fluoxr.save(v.mean("time"), target, overwrite=True)
    # a hard link opened by itself is the same file as the original
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.save(fluoxr.open_video(hard) + 1, tif, overwrite=True)
    # a symlinked output that points at the input
    out_link = folder / "out.zarr"
    out_link.symlink_to(tif)
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.save(v + 1, out_link, overwrite=True)
    np.testing.assert_array_equal(fluoxr.open_video(tif).values, frames)


def test_save_refuses_folders_holding_an_input_and_paths_inside_an_input_store(work):
    folder, _, _, frames = work
    data = folder / "data"
    data.mkdir()
    inner = data / "rec.tif"
    tifffile.imwrite(inner, frames)
    v = fluoxr.open_video(inner)
    with pytest.raises(ValueError, match="holds an input"):
        fluoxr.save(v * 2, data, overwrite=True)
    store = folder / "rec.zarr"
    fluoxr.save(v, store)
    z = fluoxr.open_video(store)
    digest = _sha256(store)
    for target in (store / "sub.zarr", store, folder / "rec.zarr" / "video"):
        with pytest.raises(ValueError, match="input"):
            fluoxr.save(z + 1, target, overwrite=True)
    # the graph's readers are found without any attribute naming them
    bare = (z + 1).mean("time")
    bare.attrs = {}
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.save(bare, store, overwrite=True)
    assert _sha256(store) == digest and inner.exists()


def test_graph_inputs_come_from_the_readers(work):
    folder, tif, _, _ = work
    v = fluoxr.open_video(tif)
    derived = (v.astype("float32") * 3).std("time")
    derived.attrs = {}
    assert _outputs.graph_inputs(derived) == {str(tif)}
    assert _outputs.graph_inputs(xr.DataArray(np.zeros(3))) == set()


@pytest.mark.parametrize("flag", ["--png", "--tracks"])
def test_cli_file_outputs_linked_to_the_input_are_refused(work, flag):
    folder, tif, _, _ = work
    link = folder / "figure.png"
    link.symlink_to(tif)
    if flag == "--png":
        argv = ["sofi", str(tif), "-o", str(folder / "s.zarr"), "--png", str(link), "--order", "2"]
    else:
        argv = ["oscillations", str(tif), "--period", "10", "--interval", "1", "--min-cluster-size", "3",
                "-o", str(folder / "o.zarr"), "--tracks", str(link), "--overwrite"]
    assert cli_main(argv + ["--scheduler", "threads", "--no-progress"]) == 2
    assert not (folder / "s.zarr").exists() and not (folder / "o.zarr").exists()


def test_cli_figure_replaces_a_link_instead_of_writing_through_it(work, capsys):
    folder, tif, _, _ = work
    precious = folder / "notes.txt"
    precious.write_text("lab notebook")
    link = folder / "s.png"
    link.symlink_to(precious)
    assert cli_main(["sofi", str(tif), "-o", str(folder / "s.zarr"), "--order", "2", "--png", str(link),
                     "--scheduler", "threads", "--no-progress"]) == 0
    assert precious.read_text() == "lab notebook"
    assert not link.is_symlink() and link.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_never_writes_into_a_foreign_folder(work, capsys):
    folder, _, _, _ = work
    mine = folder / "mine"
    mine.mkdir()
    (mine / "experiment.zarr").mkdir()
    (mine / "experiment.zarr" / "zarr.json").write_text("{}")
    before = _snapshot(mine)
    assert cli_main(["demo", "-o", str(mine), "--frames", "20", "--scheduler", "threads", "--no-progress"]) == 2
    assert "other files" in capsys.readouterr().err
    assert _snapshot(mine) == before
    assert cli_main(["demo", "-o", ".", "--frames", "20", "--scheduler", "threads", "--no-progress"]) == 2


def test_demo_recognises_its_own_earlier_runs():
    from fluoxr.cli import _only_demo_files

    assert _only_demo_files(["sofi.zarr", "sofi.zarr.partial", "oscillations.png", "calcium.zarr.lock"])
    assert not _only_demo_files(["sofi.zarr", "thesis.docx"])


# -- 2. resume means the same computation -----------------------------------------------------------


_TOKENS = textwrap.dedent(
    """
    import dask, numpy as np, fluoxr
    from fluoxr.io import _prepare_dataset
    v = fluoxr.open_video({tif!r}, fps=5.0, chunks=5)
    rois = fluoxr.ROISet.from_labels(np.kron(np.arange(4).reshape(2, 2), np.ones((6, 5), int)))
    out = fluoxr.extract(v, rois, neuropil=None)
    f = out["F"]
    out["spikes"] = fluoxr.oasis(f - fluoxr.baseline(f, window_s=2, sigma_frames=1), tau_s=0.5)
    results = [out, fluoxr.sofi_images(v, 4, bleach_correction=True, fbc=0.2, smooth_kernel=5),
               fluoxr.oscillations.detect(v, period_s=4, min_cluster_size=2).to_dataset(),
               fluoxr.traces(v, [(3, 3), (8, 6)], size=3).to_dataset(name="F")]
    print(" ".join(dask.base.tokenize(_prepare_dataset(r)) for r in results))
    """
)


@pytest.mark.slow
def test_every_analysis_has_the_same_token_in_another_process(work):
    """Resume compares dask tokens across processes: they must not depend on the process."""
    folder, tif, _, _ = work
    code = _TOKENS.format(tif=str(tif))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout.split() == runs[1].stdout.split() and len(runs[0].stdout.split()) == 4


def _interrupt(obj, path, n_chunks: int = 2) -> None:
    """Write ``obj`` to ``path`` and stop after ``n_chunks`` chunks, like a kill (the lock is left stale)."""
    original = fio.store._write_block
    count = [0]

    def failing(*args):
        count[0] += 1
        if count[0] > n_chunks:
            raise KeyboardInterrupt("simulated kill")
        return original(*args)

    fio.store._write_block = failing
    try:
        with dask.config.set(scheduler="sync"), pytest.raises(KeyboardInterrupt):
            fluoxr.save(obj, path)
    finally:
        fio.store._write_block = original
    assert os.path.exists(str(path) + ".partial")


def test_resume_refuses_another_computation(work):
    folder, tif, _, _ = work
    v = fluoxr.open_video(tif, chunks=4)
    out = folder / "o.zarr"
    _interrupt(v * 2, out)
    with pytest.raises(ValueError, match="different computation.*dask token.*overwrite=True"):
        fluoxr.save(v * 3, out, resume=True)  # same shapes and chunks, other values
    with pytest.raises(ValueError, match="chunks differ"):
        fluoxr.save((v * 2).chunk({"time": 6}), out, resume=True)
    fluoxr.save(v * 2, out, resume=True)
    np.testing.assert_array_equal(fluoxr.open_video(out).values, v.values * 2)


def test_resume_refuses_a_changed_input(work):
    folder, tif, _, frames = work
    copy = folder / "copy.tif"
    shutil.copy(tif, copy)
    out = folder / "o.zarr"
    _interrupt(fluoxr.open_video(copy, chunks=4) + 1, out)
    tifffile.imwrite(copy, frames[::-1].copy(), photometric="minisblack")  # same size, other frames
    with pytest.raises(ValueError, match=r"input .*copy.tif changed since the interrupted write"):
        fluoxr.save(fluoxr.open_video(copy, chunks=4) + 1, out, resume=True)


def test_resume_of_a_complete_store(work):
    folder, tif, _, _ = work
    v = fluoxr.open_video(tif, chunks=5)
    out = folder / "o.zarr"
    fluoxr.save(v, out)
    before = _snapshot(out)
    assert fluoxr.save(v, out, resume=True) == str(out)  # the same result: nothing to do
    assert _snapshot(out) == before
    with pytest.raises(ValueError, match="complete result of a different computation"):
        fluoxr.save(v + 1, out, resume=True)
    assert _snapshot(out) == before


def test_cli_resume_with_other_parameters_is_refused(work, capsys):
    folder, tif, _, _ = work
    out = folder / "labels.zarr"
    video = fluoxr.open_video(tif, fps=1.0)
    _interrupt(fluoxr.oscillations.detect(video, period_s=10, interval_s=1, min_cluster_size=3), out, n_chunks=0)
    argv = ["oscillations", str(tif), "--interval", "1", "--min-cluster-size", "3", "-o", str(out), "--resume",
            "--scheduler", "threads", "--no-progress"]
    assert cli_main(argv + ["--period", "20"]) == 2
    err = capsys.readouterr().err
    assert "different computation" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1


# -- 3. one writer at a time ------------------------------------------------------------------------


_SLOW_WRITER = textwrap.dedent(
    """
    import os, sys, time, dask, numpy as np, fluoxr
    dask.config.set(scheduler="synchronous")
    go = {go!r}
    while go and not os.path.exists(go):
        time.sleep(0.01)

    def slow(block):
        time.sleep({delay})
        return block

    v = fluoxr.open_video({tif!r}, chunks=1)
    try:
        fluoxr.save((v * {factor}).copy(data=(v * {factor}).data.map_blocks(slow, dtype=v.dtype)), {out!r},
                    overwrite=True)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    """
)


def _writer(tif, out, *, factor=1, delay=0.05, go="") -> subprocess.Popen:
    code = _SLOW_WRITER.format(tif=str(tif), out=str(out), factor=factor, delay=delay, go=str(go))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_writer_fails_at_once_naming_the_first(work):
    folder, tif, _, frames = work
    out = folder / "o.zarr"
    proc = _writer(tif, out, delay=0.3)
    try:
        _wait_for(os.path.join(str(out) + ".partial", "metadata.done"), proc)
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=f"being written by process {proc.pid} on"):
            fluoxr.save(fluoxr.open_video(tif), out, overwrite=True)
        assert time.perf_counter() - t0 < 5
        # the lock of a killed writer is stale: the next save takes it over and resumes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(fio.IncompleteStoreError):
        fluoxr.open_video(out)
    # resume needs the same computation: the writer's slow map is another graph, so start over
    fluoxr.save(fluoxr.open_video(tif, chunks=1), out, overwrite=True)
    np.testing.assert_array_equal(fluoxr.open_video(out).values, frames)
    assert not os.path.exists(str(out) + ".lock")


@pytest.mark.slow
def test_two_writers_started_together_leave_exactly_one_full_result(work):
    folder, tif, _, frames = work
    out = folder / "o.zarr"
    go = folder / "go"
    procs = [_writer(tif, out, factor=f, delay=0.1, go=go) for f in (1, 2)]
    time.sleep(3)  # both have imported fluoxr and wait for the signal
    go.write_text("")
    codes = [p.wait(timeout=300) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 3], errors
    loser = errors[codes.index(3)]
    assert "being written by process" in loser
    winner = (1, 2)[codes.index(0)]
    np.testing.assert_array_equal(fluoxr.open_video(out).values, frames * winner)
    assert not os.path.exists(str(out) + ".lock")


def test_lock_is_released_when_the_process_exits(work):
    folder, tif, _, _ = work
    out = folder / "o.zarr"
    code = f"import fluoxr; fluoxr.save(fluoxr.open_video({str(tif)!r}) + 1, {str(out)!r}, compute=False)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert not os.path.exists(str(out) + ".lock")
    with pytest.raises(ValueError, match="resume"):
        fluoxr.open_result(out)


def test_pending_write_in_this_process_keeps_the_lock(work):
    folder, tif, _, frames = work
    out = folder / "o.zarr"
    job = fluoxr.save(fluoxr.open_video(tif), out, compute=False)
    with pytest.raises(ValueError, match="this process"):
        fluoxr.save(fluoxr.open_video(tif), out, overwrite=True)
    job.compute()
    assert not os.path.exists(str(out) + ".lock")
    np.testing.assert_array_equal(fluoxr.open_video(out).values, frames)


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"pid": 2**22 + 7, "host": "HOST", "owner": "x"})])
def test_stale_or_half_written_locks_are_taken_over(work, content):
    folder, tif, _, frames = work
    out = folder / "o.zarr"
    import socket

    (folder / "o.zarr.lock").write_text(content.replace("HOST", socket.gethostname()))
    fluoxr.save(fluoxr.open_video(tif), out)
    np.testing.assert_array_equal(fluoxr.open_video(out).values, frames)
    assert not (folder / "o.zarr.lock").exists()


def test_a_lock_from_another_host_is_not_broken(work):
    folder, tif, _, _ = work
    (folder / "o.zarr.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "owner": "x"}))
    with pytest.raises(ValueError, match="cannot check another host"):
        fluoxr.save(fluoxr.open_video(tif), folder / "o.zarr")


# -- 4. completeness lives inside the store --------------------------------------------------------


def test_incomplete_store_is_refused_everywhere_even_when_copied(work, capsys):
    folder, tif, _, _ = work
    out = folder / "o.zarr"
    _interrupt(fluoxr.open_video(tif, chunks=4), out)
    copy = folder / "elsewhere" / "copy.zarr"
    shutil.copytree(out, copy)  # without its progress folder
    for path in (out, copy):
        with pytest.raises(ValueError, match="incomplete store.*resume"):
            fluoxr.open_video(path)
        with pytest.raises(ValueError, match="incomplete store.*resume"):
            fluoxr.open_result(path)
        assert cli_main(["info", str(path)]) == 2
        assert "--resume" in capsys.readouterr().err
    # the copy resumes too (every chunk written again: its progress folder stayed behind)
    fluoxr.save(fluoxr.open_video(tif, chunks=4), copy, resume=True)
    np.testing.assert_array_equal(fluoxr.open_video(copy).values, fluoxr.open_video(tif).values)


def test_a_moved_complete_store_still_opens(work):
    folder, tif, _, frames = work
    fluoxr.save(fluoxr.open_video(tif), folder / "a.zarr")
    os.rename(folder / "a.zarr", folder / "b.zarr")
    np.testing.assert_array_equal(fluoxr.open_video(folder / "b.zarr").values, frames)


def test_leftovers_of_a_kill_are_recovered_by_the_next_save(work):
    folder, tif, _, frames = work
    out = folder / "o.zarr"
    v = fluoxr.open_video(tif, chunks=4)
    fluoxr.save(v, out)
    (folder / "o.zarr.partial.done" / "done").mkdir(parents=True)  # killed while removing the trash
    (folder / "o.zarr.lock").write_text("")  # killed while taking the lock
    fluoxr.save(v, out, resume=True)
    assert not (folder / "o.zarr.partial.done").exists() and not (folder / "o.zarr.lock").exists()
    fluoxr.save(v + 1, out, overwrite=True)
    np.testing.assert_array_equal(fluoxr.open_video(out).values, frames + 1)


def test_foreign_zarr_stores_open_as_complete(work):
    folder, _, _, frames = work
    xr.Dataset({"v": (("time", "y", "x"), frames)}).to_zarr(folder / "plain.zarr", zarr_format=3)
    np.testing.assert_array_equal(fluoxr.open_video(folder / "plain.zarr").values, frames)


def test_internal_write_record_is_not_a_user_attribute(work):
    folder, tif, _, _ = work
    out = folder / "o.zarr"
    fluoxr.save(fluoxr.open_video(tif, fps=4.0), out)
    assert "fluoxr_write" not in fluoxr.open_video(out).attrs
    assert "fluoxr_write" not in fluoxr.open_result(out).attrs
    record = json.loads((out / "zarr.json").read_text())["attributes"]["fluoxr_write"]
    assert record["complete"] is True and record["inputs"][0]["path"] == str(tif)
    # a result saved from a reopened store records its own write, not the old one
    again = folder / "again.zarr"
    fluoxr.save(fluoxr.open_result(out) * 2, again)
    assert json.loads((again / "zarr.json").read_text())["attributes"]["fluoxr_write"]["inputs"][0]["path"] == str(out)


# -- 5. readers: files that change, truncated or corrupt files, axes, metadata, float16 ----------------


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 60000, (12, 16, 20), dtype=np.uint16)


def _cut(src, dst, n_bytes: int) -> None:
    """Copy the first ``n_bytes`` of ``src`` to ``dst`` (a truncated copy; ``src`` is kept)."""
    with open(src, "rb") as fh:
        data = fh.read(n_bytes)
    with open(dst, "wb") as fh:
        fh.write(data)


# -- paths and fingerprints --------------------------------------------------------------------


def test_relative_path_reads_the_same_file_after_chdir(tmp_path, monkeypatch, frames):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    tifffile.imwrite(here / "a.tif", frames)
    # a different file of the same name where the worker would run
    tifffile.imwrite(elsewhere / "a.tif", frames[::-1].copy())
    digest = _sha256(here / "a.tif")
    monkeypatch.chdir(here)
    v = fluoxr.open_video("a.tif", chunks=5)
    assert v.attrs["source"] == str(here / "a.tif")
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(v.values, frames)
    # the graph as a process-based worker receives it
    graph = cloudpickle.loads(cloudpickle.dumps(dict(v.data.__dask_graph__())))
    got = dask.get(graph, list(dask.core.flatten(v.data.__dask_keys__())))
    np.testing.assert_array_equal(np.concatenate(got), frames)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(v)).values, frames)
    assert _sha256(here / "a.tif") == digest


def test_files_fingerprint_every_input(tmp_path, frames):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, frames)
    tifffile.imwrite(b, frames, compression="zlib")
    digests = [_sha256(a), _sha256(b)]
    v = fluoxr.open_video([a, b])
    reader = next(x for x in v.data.__dask_graph__().values() if hasattr(x, "files"))
    files = reader.files()
    assert [f[0] for f in files] == [str(a), str(b)]
    for (path, size, mtime), p in zip(files, (a, b)):
        assert (size, mtime) == (os.stat(p).st_size, os.stat(p).st_mtime_ns)
    assert reader.paths == (str(a), str(b))
    # small and picklable: no handle, no pixel data
    assert len(pickle.dumps(reader)) < 4000
    assert [_sha256(a), _sha256(b)] == digests


def _write(kind: str, path, frames: np.ndarray) -> str:
    if kind == "tif":
        tifffile.imwrite(path, frames)
    elif kind == "tif-zlib":
        tifffile.imwrite(path, frames, compression="zlib")
    elif kind == "npy":
        np.save(path, frames)
    elif kind == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            f["video"] = frames
    else:
        frames.astype(np.int16).tofile(path)
    return str(path)


_SUFFIX = {"tif": ".tif", "tif-zlib": ".tif", "npy": ".npy", "h5": ".h5", "bin": ".bin"}
_KINDS = ["tif", "tif-zlib", "npy", "h5", "bin"]


def _open(kind: str, path: str) -> xr.DataArray:
    return fluoxr.open_video(path, chunks=4, **({"shape": (16, 20)} if kind == "bin" else {}))


@pytest.mark.parametrize("kind", _KINDS)
def test_file_rewritten_with_same_size_is_refused(tmp_path, frames, kind):
    if kind == "h5":
        pytest.importorskip("h5py")
    path = _write(kind, tmp_path / f"v{_SUFFIX[kind]}", frames)
    v = _open(kind, path)
    # new content of the same size, as a second acquisition saved under the same name
    _write(kind, tmp_path / f"w{_SUFFIX[kind]}", frames[::-1].copy())
    with open(tmp_path / f"w{_SUFFIX[kind]}", "rb") as src:
        data = src.read()
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(data[: before.st_size])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert os.path.getsize(path) == before.st_size
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"{os.path.basename(path)}.*changed since it was opened \(modified"):
        v.values
    assert _sha256(path) == digest


@pytest.mark.parametrize("kind", _KINDS)
def test_file_rewritten_with_other_size_is_refused(tmp_path, frames, kind):
    if kind == "h5":
        pytest.importorskip("h5py")
    path = _write(kind, tmp_path / f"v{_SUFFIX[kind]}", frames)
    v = _open(kind, path)
    v.isel(time=0).values  # readable as opened
    size = os.path.getsize(path)
    _write(kind, path, np.concatenate([frames, frames]))
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"{os.path.basename(path)}.*changed since it was opened "
                                         rf"\(size {size} -> \d+ bytes.*open it again with fluoxr.open_video"):
        v.values
    assert _sha256(path) == digest


def test_deleted_file_is_named(tmp_path, frames):
    path = _write("tif", tmp_path / "gone.tif", frames)
    v = fluoxr.open_video(path)
    os.remove(path)
    with pytest.raises(ValueError, match="gone.tif.*no longer exists"):
        v.values


def test_short_raw_read_names_file_and_frames(tmp_path, frames):
    path = _write("bin", tmp_path / "data.bin", frames)
    digest = _sha256(path)
    # a reader whose layout promises more frames than the file has (as a file truncated in a
    # way its size check could not see would)
    reader = _RawReader(path, np.int16, 0, (20, 16, 20), (0, 1, 2))
    np.testing.assert_array_equal(reader[0:2], frames[:2].astype(np.int16))
    with pytest.raises(ValueError, match=r"data\.bin': frames 10\.\.14 cannot be read \(wanted .* bytes .* "
                                         r"got .*\): the file is truncated or corrupt"):
        reader[10:15]
    assert _sha256(path) == digest


# -- truncated and corrupt TIFF files ----------------------------------------------------------

_TIFF_VARIANTS = {
    "contiguous": dict(),
    "bigtiff": dict(bigtiff=True),
    "zlib": dict(compression="zlib"),
    "ome": dict(ome=True, metadata={"axes": "TYX"}),
    "ome-zlib": dict(ome=True, metadata={"axes": "TYX"}, compression="zlib"),
    "ome-hyperstack": dict(ome=True, metadata={"axes": "TCYX"}),
    "imagej": dict(imagej=True, metadata={"axes": "TYX"}),
    "imagej-hyperstack": dict(imagej=True, metadata={"axes": "TCYX"}),
    "imagej-hyperstack-zlib": dict(imagej=True, metadata={"axes": "TCYX"}, compression="zlib"),
}


@pytest.mark.parametrize("variant", list(_TIFF_VARIANTS))
def test_truncated_tiff_never_opens_short_or_wrong(tmp_path, frames, variant):
    kwargs = dict(_TIFF_VARIANTS[variant])
    data = frames.reshape(6, 2, 16, 20) if "TCYX" in str(kwargs.get("metadata")) else frames
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, data, **kwargs)
    size = os.path.getsize(full)
    cut = tmp_path / "cut.tif"
    refused = 0
    for n_bytes in np.linspace(0.03, 0.995, 25).__mul__(size).astype(int):
        _cut(full, cut, int(n_bytes))
        digest = _sha256(cut)
        try:
            v = fluoxr.open_video(cut, chunks=3)
        except ValueError as exc:
            assert "cut.tif" in str(exc) and ("truncated" in str(exc) or "corrupt" in str(exc)), str(exc)
            refused += 1
        else:
            try:
                got = v.values
            except ValueError as exc:
                assert "cut.tif" in str(exc) and "frame" in str(exc), str(exc)
                refused += 1
            else:
                # only a cut past every pixel (trailing directory bytes) may read, and then exactly
                expected = fluoxr.open_video(full).values
                np.testing.assert_array_equal(got, expected)
        assert _sha256(cut) == digest
    assert refused >= 20


@pytest.mark.parametrize("variant", ["ome-hyperstack", "imagej-hyperstack"])
def test_truncated_hyperstack_says_how_many_pages_its_metadata_promises(tmp_path, frames, variant):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames.reshape(6, 2, 16, 20), **_TIFF_VARIANTS[variant])
    with tifffile.TiffFile(full) as tif:
        # cut inside the pixels of page 7 of 12, keeping every directory tifffile needs for the first
        offset = tif.pages[7].dataoffsets[0] if variant.startswith("ome") else None
    cut = tmp_path / "cut.tif"
    if offset is None:
        # ImageJ: one block of pixels after the header
        offset = os.path.getsize(full) // 2
    _cut(full, cut, int(offset) + 10)
    digest = _sha256(cut)
    with pytest.raises(ValueError, match=r"cut\.tif.*(truncated|corrupt)") as info:
        fluoxr.open_video(cut)
    message = str(info.value)
    if variant.startswith("imagej"):
        assert "ImageJ metadata (images=12) promises 12 pages" in message
    assert _sha256(cut) == digest


def test_imagej_page_count_checked_against_metadata(tmp_path, frames):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames.reshape(6, 2, 16, 20), imagej=True, metadata={"axes": "TCYX"})
    _cut(path, tmp_path / "cut.tif", os.path.getsize(path) - 4000)
    with pytest.raises(ValueError, match=r"cut\.tif': its ImageJ metadata \(images=12\) promises 12 pages, "
                                         r"the file holds \d+: the file is truncated or corrupt"):
        fluoxr.open_video(tmp_path / "cut.tif")


def test_truncated_contiguous_tiff_names_first_incomplete_frame(tmp_path, frames):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, metadata=None)  # no description: nothing but the IFDs says 12 frames
    with tifffile.TiffFile(full) as tif:
        start = tif.series[0].dataoffset
    cut = tmp_path / "cut.tif"
    _cut(full, cut, os.path.getsize(full))
    with open(cut, "r+b") as fh:
        fh.truncate(start + 5 * 16 * 20 * 2 + 100)
    digest = _sha256(cut)
    with pytest.raises(ValueError, match=r"cut\.tif.*(frame 5 is the first incomplete one|truncated or corrupt)"):
        fluoxr.open_video(cut)
    assert _sha256(cut) == digest


@pytest.mark.parametrize("kwargs", [dict(), dict(ome=True, metadata={"axes": "TYX"}),
                                    dict(imagej=True, metadata={"axes": "TYX"})])
@pytest.mark.parametrize("where", ["start", "middle"])
def test_corrupt_compressed_page_names_file_and_frame(tmp_path, frames, kwargs, where):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, compression="zlib", **kwargs)
    with tifffile.TiffFile(full) as tif:
        page = tif.pages[5]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    data = bytearray(full.read_bytes())
    pos = offset if where == "start" else offset + count // 2
    data[pos:pos + 4] = b"\xff\x00\xaa\x55"
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    digest = _sha256(bad)
    v = fluoxr.open_video(bad, chunks=4)  # the directory is intact: opens
    np.testing.assert_array_equal(v.isel(time=slice(0, 4)).values, frames[:4])
    with pytest.raises(ValueError, match=r"bad\.tif': frame 5 cannot be read \(zlib\.error: .*\): "
                                         r"the file is truncated or corrupt"):
        v.values
    assert _sha256(bad) == digest


def test_corrupt_tiff_header_is_refused_at_open(tmp_path, frames):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, frames)
    data = bytearray(path.read_bytes())
    data[4:8] = (10**9).to_bytes(4, "little")  # first IFD beyond the end of the file
    path.write_bytes(bytes(data))
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"bad\.tif.*(truncated or corrupt|not a readable TIFF)"):
        fluoxr.open_video(path)
    assert _sha256(path) == digest


# -- axes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 9, 1), (7, 1, 1), (7, 1, 9), (7, 5, 6)])
def test_thin_frames_open_as_time_y_x(tmp_path, shape):
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    path = tmp_path / "thin.tif"
    tifffile.imwrite(path, data)
    digest = _sha256(path)
    v = fluoxr.open_video(path, chunks=3)
    assert v.dims == ("time", "y", "x") and v.shape == shape
    np.testing.assert_array_equal(v.values, data)
    np.testing.assert_array_equal(v.isel(time=4).values, data[4])
    assert _sha256(path) == digest


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_planar_rgb_opens_as_time_channel_y_x(tmp_path, compression):
    data = np.arange(5 * 3 * 4 * 6, dtype=np.uint16).reshape(5, 3, 4, 6)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate", compression=compression)
    digest = _sha256(path)
    v = fluoxr.open_video(path, chunks=2)
    assert v.dims == ("time", "channel", "y", "x") and v.shape == data.shape
    np.testing.assert_array_equal(v.values, data)
    assert _sha256(path) == digest


def test_contiguous_rgb_moves_samples_to_channel(tmp_path):
    data = np.arange(5 * 4 * 6 * 3, dtype=np.uint8).reshape(5, 4, 6, 3)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    v = fluoxr.open_video(path)
    assert v.dims == ("time", "channel", "y", "x")
    np.testing.assert_array_equal(v.values, data.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("axes", ["QYX", "IYX"])
def test_generic_axis_first_is_time(tmp_path, frames, axes):
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, frames, metadata={"axes": axes})
    digest = _sha256(path)
    v = fluoxr.open_video(path)
    assert v.dims == ("time", "y", "x")
    np.testing.assert_array_equal(v.values, frames)
    assert _sha256(path) == digest


def test_image_sequence_without_metadata_is_time(tmp_path, frames):
    path = tmp_path / "i.tif"
    tifffile.imwrite(path, frames, metadata=None)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes[0] == "I"
    np.testing.assert_array_equal(fluoxr.open_video(path).values, frames)


@pytest.mark.parametrize("axes", ["TQYX", "TIYX", "IQYX", "QQYX"])
def test_generic_axis_elsewhere_is_refused(tmp_path, frames, axes):
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, frames.reshape(6, 2, 16, 20), metadata={"axes": axes})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"q\.tif': TIFF axis '[QI]' at position 1 of axes '{axes}'.*"
                                         r"time only when it is the first axis"):
        fluoxr.open_video(path)
    assert _sha256(path) == digest


# -- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("meta, shown", [({"fps": "abc"}, "fps='abc'"), ({"fps": -5}, "fps=-5"),
                                          ({"fps": 0}, "fps=0"), ({"finterval": "soon"}, "finterval='soon'"),
                                          ({"finterval": -0.1}, "finterval=-0.1")])
def test_imagej_bad_frame_rate_is_refused_unless_fps_given(tmp_path, frames, meta, shown, caplog):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames, imagej=True, metadata={"axes": "TYX", **meta})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"ij\.tif': its ImageJ metadata says {shown}, which is not a frame "
                                         r"(rate|interval); pass fps= to open_video to set it"):
        fluoxr.open_video(path)
    with caplog.at_level("INFO", logger="fluoxr.io"):
        v = fluoxr.open_video(path, fps=20)
    assert v.attrs["fps"] == 20.0
    assert "ignored" in caplog.text
    np.testing.assert_array_equal(v.values, frames)
    assert _sha256(path) == digest


def test_ome_bad_time_increment_and_pixel_size(tmp_path, frames):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": -2.0,
                                                       "PhysicalSizeX": -0.5})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"o\.ome\.tif': its OME metadata says TimeIncrement='-2\.0', which is "
                                         r"not a frame interval; pass fps="):
        fluoxr.open_video(path, pixel_size=0.3)
    with pytest.raises(ValueError, match=r"o\.ome\.tif': its OME metadata says PhysicalSizeX='-0\.5', which is "
                                         r"not a pixel size; pass pixel_size="):
        fluoxr.open_video(path, fps=5)
    v = fluoxr.open_video(path, fps=5, pixel_size=0.3)
    assert (v.attrs["fps"], v.attrs["pixel_size"]) == (5.0, 0.3)
    assert _sha256(path) == digest


def test_ome_time_increment_in_ms(tmp_path, frames):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": 50,
                                                       "TimeIncrementUnit": "ms"})
    assert fluoxr.open_video(path).attrs["fps"] == pytest.approx(20.0)


def test_imagej_bad_pixel_size_is_refused_unless_given(tmp_path, frames):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames, imagej=True, resolution=(0.0, 1.0), metadata={"axes": "TYX", "unit": "um"})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"ij\.tif': its ImageJ metadata says XResolution=.*not a pixel size; "
                                         r"pass pixel_size="):
        fluoxr.open_video(path)
    assert fluoxr.open_video(path, pixel_size=0.4).attrs["pixel_size"] == 0.4
    assert _sha256(path) == digest


@pytest.mark.parametrize("fs", [0, -1.5, "fast", float("nan")])
def test_suite2p_bad_fs_is_refused_unless_fps_given(tmp_path, frames, fs):
    frames.astype(np.int16).tofile(tmp_path / "data.bin")
    np.save(tmp_path / "ops.npy", {"Ly": 16, "Lx": 20, "fs": fs}, allow_pickle=True)
    digests = [_sha256(tmp_path / "data.bin"), _sha256(tmp_path / "ops.npy")]
    with pytest.raises(ValueError, match=r"ops\.npy': its suite2p ops dict says fs=.*, which is not a frame rate; "
                                         r"pass fps= to open_video"):
        fluoxr.open_video(tmp_path / "data.bin")
    v = fluoxr.open_video(tmp_path / "data.bin", fps=30)
    assert v.attrs["fps"] == 30.0
    np.testing.assert_array_equal(v.values, frames.astype(np.int16))
    assert [_sha256(tmp_path / "data.bin"), _sha256(tmp_path / "ops.npy")] == digests


def test_h5_bad_fps_attribute(tmp_path, frames):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["video"] = frames
        f["video"].attrs["fps"] = -3.0
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"v\.h5': its HDF5 dataset '/?video' says fps=.*pass fps="):
        fluoxr.open_video(path)
    assert fluoxr.open_video(path, fps=4).attrs["fps"] == 4.0
    assert _sha256(path) == digest


# -- float16 -------------------------------------------------------------------------------------


@pytest.fixture
def half_and_single() -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(3)
    t = np.arange(120)[:, None, None]
    values = (200 + 40 * np.sin(t / 9.0) + 30 * rng.random((120, 16, 20))).astype(np.float16)
    return (fluoxr.as_video(values, fps=10, chunks=25),
            fluoxr.as_video(values.astype(np.float32), fps=10, chunks=25))


def test_float16_extract_equals_float32(half_and_single):
    v16, v32 = half_and_single
    rois = fluoxr.ROISet.from_positions([(4, 5), (10, 12), (8, 3)], shape=(16, 20), size=3)
    a, b = fluoxr.extract(v16, rois, neuropil=None), fluoxr.extract(v32, rois, neuropil=None)
    assert a.F.dtype == np.float32
    np.testing.assert_array_equal(a.F.values, b.F.values)
    a, b = fluoxr.extract(v16, rois, batch=7), fluoxr.extract(v32, rois, batch=7)
    np.testing.assert_array_equal(a.Fneu.values, b.Fneu.values)


def test_float16_traces_equal_float32(half_and_single):
    v16, v32 = half_and_single
    for window in ("rect", "disc", "pixel"):
        a = fluoxr.traces(v16, [(4, 5), (10, 12)], size=3, window=window)
        b = fluoxr.traces(v32, [(4, 5), (10, 12)], size=3, window=window)
        np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("method", ["maximin", "constant", "prctile"])
def test_float16_baseline_and_dff_equal_float32(half_and_single, method):
    v16, _ = half_and_single
    tr16 = v16.isel(y=slice(0, 3)).stack(roi=("y", "x")).transpose("roi", "time").drop_vars(["roi", "y", "x"])
    tr32 = tr16.astype(np.float32)
    kw = dict(method=method, window_s=2.0, sigma_frames=2)
    a, b = fluoxr.baseline(tr16, **kw), fluoxr.baseline(tr32, **kw)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(fluoxr.dff(tr16, f0=a).values, fluoxr.dff(tr32, f0=b).values)


def test_float16_dff_default_baseline_equals_float32(half_and_single):
    v16, _ = half_and_single
    tr16 = fluoxr.traces(v16, [(4, 5), (10, 12)], size=3).astype(np.float16)
    np.testing.assert_array_equal(fluoxr.dff(tr16).values, fluoxr.dff(tr16.astype(np.float32)).values)


def test_float16_video_from_file(tmp_path, half_and_single):
    v16, v32 = half_and_single
    path = tmp_path / "half.npy"
    np.save(path, v16.values)
    digest = _sha256(path)
    video = fluoxr.open_video(path, fps=10, chunks=25)
    assert video.dtype == np.float16
    a = fluoxr.traces(video, [(4, 5)], size=3)
    np.testing.assert_array_equal(a.values, fluoxr.traces(v32, [(4, 5)], size=3).values)
    assert _sha256(path) == digest


# -- 6. names and numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dF/F", "..", ".", "zarr.json", "__meta", "a\\b", ""])
def test_names_zarr_cannot_store_are_refused_before_writing(work, name):
    folder, tif, _, _ = work
    v = fluoxr.open_video(tif)
    for obj in (v.rename(name), xr.Dataset({name: v}), v.assign_coords({name: ("time", np.arange(24))})):
        with pytest.raises(ValueError, match="cannot be stored in zarr"):
            fluoxr.save(obj, folder / "o.zarr")
    assert not (folder / "o.zarr").exists() and not (folder / "o.zarr.lock").exists()


@pytest.mark.parametrize("argv, words", [
    (["sofi", "{tif}", "-o", "s.zarr", "--workers", "0"], "--workers: must be at least 1"),
    (["sofi", "{tif}", "-o", "s.zarr", "--order", "-1"], "--order: must be at least 1"),
    (["sofi", "{tif}", "-o", "s.zarr", "--fps", "nan"], "--fps: must be a finite number"),
    (["sofi", "{tif}", "-o", "s.zarr", "--fbc", "1"], "--fbc: must be less than 1"),
    (["--chunk-mb", "0", "info", "{tif}"], "--chunk-mb: must be greater than 0"),
    (["oscillations", "{tif}", "-o", "o.zarr", "--period", "-3", "--min-cluster-size", "3"], "--period"),
    (["oscillations", "{tif}", "-o", "o.zarr", "--period", "3", "--min-cluster-size", "x"], "expected an integer"),
    (["extract", "{tif}", "--labels", "l.tif", "-o", "e.zarr", "--channel", "-1"], "--channel: must be at least 0"),
    (["demo", "--workers", "-2"], "--workers"),
    (["sofi", "{tif}"], "required"),
    (["nonsense"], "invalid choice"),
])
def test_cli_numbers_out_of_range_exit_2_at_once(work, capsys, argv, words):
    folder, tif, _, _ = work
    before = _snapshot(folder)
    assert cli_main([a.format(tif=tif) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert _snapshot(folder) == before


def test_unexpected_cli_failures_are_one_line(work, capsys, monkeypatch):
    folder, tif, _, _ = work
    import fluoxr.io

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(fluoxr.io, "info", broken)
    assert cli_main(["info", str(tif)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fluoxr info: error: RuntimeError: disk on fire second line (run with -vv for details)"


# -- kills at every step of a save ------------------------------------------------------------------


def _example(tif) -> xr.Dataset:
    """A result with a lazy video, an image and a coordinate, read from a file (so it has an input)."""
    v = fluoxr.open_video(tif, chunks=4, fps=5.0)
    return xr.Dataset({"scaled": (v.astype("float32") * 1.5).chunk({"y": 7}), "mean": v.mean("time")},
                      attrs={"note": "kill test"})


class _Killer:
    """Counts the steps of a save (fluoxr's own calls, renames, removals, file creations and writes) and
    SIGKILLs the process at step ``at``; with ``at=None`` it only counts."""

    # every module of the fluoxr.io package (readers, store, safety)
    FILES = tuple(os.path.realpath(os.path.join(os.path.dirname(fio.__file__), n))
                  for n in os.listdir(os.path.dirname(fio.__file__)) if n.endswith(".py"))
    C_CALLS = {"replace", "rename", "remove", "unlink", "rmdir", "mkdir", "makedirs", "open", "fsync", "write"}
    # zarr writes from its own event-loop thread; there only file operations count ("write" would also
    # count the loop's wake-ups, which vary from run to run)
    LOOP_CALLS = {"replace", "rename", "unlink", "mkdir", "open"}

    def __init__(self, at: int | None, *, finish: bool = False) -> None:
        # finish: count only the steps after the last chunk (marking complete, the final rename, cleanup,
        # releasing the lock); their number does not vary from run to run, unlike the whole save's
        self.at, self.count, self.finish, self.counting = at, 0, finish, not finish
        self.main = threading.get_ident()

    def __call__(self, frame, event, arg):
        if self.finish and not self.counting and event == "call" and frame.f_code.co_name == "_finish":
            self.counting = True
        if threading.get_ident() == self.main:
            hit = (event == "call" and (frame.f_code.co_filename in self.FILES or frame.f_code.co_name == "rmtree")
                   ) or (event == "c_call" and getattr(arg, "__name__", "") in self.C_CALLS)
        else:
            hit = event == "c_call" and getattr(arg, "__name__", "") in self.LOOP_CALLS
        if hit and self.counting:
            self.count += 1
            if self.count == self.at:
                os.kill(os.getpid(), signal.SIGKILL)


def _in_child(fn) -> int:
    """Run ``fn`` in a forked child; return its wait status (the test process itself is never killed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]




@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("table", [False, True], ids=["dataset", "lazy-table"])
def test_sigkill_at_any_step_then_resume_gives_the_uninterrupted_store(work, table):
    folder, tif, _, _ = work
    if table:
        labels = fluoxr.oscillations.detect(fluoxr.open_video(tif, fps=1.0, chunks=6), period_s=8, interval_s=1,
                                            min_cluster_size=2)
        fluoxr.save(labels, folder / "labels.zarr")

        def make():
            return fluoxr.oscillations.oscillation_coordinates(fluoxr.open_result(folder / "labels.zarr"))
    else:
        def make():
            return _example(tif)

    reference = folder / "reference.zarr"
    fluoxr.save(make(), reference)
    expected = _snapshot(reference)
    out = folder / "out.zarr"
    fluoxr.save(make(), out)  # every run below replaces a finished store, as a rerun with --overwrite does
    counts = folder / "steps.txt"

    def write(at, finish=False):
        killer = _Killer(at, finish=finish)
        sys.setprofile(killer)
        threading.setprofile(killer)  # zarr writes from its own event-loop thread
        with dask.config.set(scheduler="synchronous"):
            fluoxr.save(make(), out, overwrite=True)
        sys.setprofile(None)
        threading.setprofile(None)
        counts.write_text(str(killer.count))

    assert _in_child(lambda: write(None)) == 0
    n = int(counts.read_text())
    assert _in_child(lambda: write(None, finish=True)) == 0
    n_finish = int(counts.read_text())
    # points spread over the whole save (its step count varies by a few between runs, so the spread stops
    # short of the end), then every step after the last chunk: marking complete, final rename, cleanup
    spread = np.unique(np.linspace(1, int(n * 0.97), 24 if not table else 12).astype(int)).tolist()
    finish = sorted(set(np.linspace(1, n_finish, 24).astype(int).tolist()) | set(range(n_finish - 5, n_finish + 1)))
    points = [(at, False) for at in spread] + [(at, True) for at in finish if at >= 1]
    killed = 0
    for at, finish in points:
        where = f"step {at}/{n_finish} after the last chunk" if finish else f"step {at}/{n}"
        status = _in_child(lambda: write(at, finish))
        killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        # whatever the kill left, a store that opens is never partial
        try:
            fluoxr.open_result(out)
        except (ValueError, FileNotFoundError):
            pass
        else:
            assert _snapshot(out) == expected, f"killed at {where}: an incomplete store opened"
        fluoxr.save(make(), out, resume=True)
        assert _snapshot(out) == expected, f"killed at {where}: the resumed store differs"
        leftovers = [p for p in os.listdir(folder) if p.startswith("out.zarr") and p != "out.zarr"]
        assert not leftovers, f"killed at {where}: left {leftovers}"
    print(f"save of {'a lazy table' if table else 'a dataset'}: {n} steps, {n_finish} after the last chunk; "
          f"killed at {killed} of {len(points)} points")
    assert n_finish >= 5 and killed == len(points), (killed, len(points), n, n_finish)
