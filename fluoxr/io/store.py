"""Saving results to zarr: chunk by chunk, resumable, never into an input, complete or refused.

:func:`save` writes the metadata first, then every chunk in its own task with
a marker beside it (``PATH.partial``), so an interrupted write resumes without
recomputing what was written; tables of unknown length are written block by
block (the ragged writer). The store records whether it is complete
(:func:`check_complete`). What keeps outputs away from inputs (refused paths,
locks, fingerprints) is :mod:`.safety`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .readers import PathLike
from .safety import (LOCK_SUFFIX, OutputLock, attr_sources, check_output_path, describe_fingerprint_change,
                     fingerprint_inputs, fsync_dir, graph_inputs, release_lock)

logger = logging.getLogger(__name__)

_PARTIAL = ".partial"
_OME_XARRAY_GROUP = "fluoxr"  # fluoxr.io.ome_zarr._XARRAY_GROUP

# --------------------------------------------------------------------------------------------
# saving: chunk by chunk, resumable, never into an input


# The store says itself whether it is complete: its root attribute _WRITE_ATTR holds the
# fingerprint of what it holds and "complete", set true (by an atomic rename of zarr.json) only
# after the last chunk. Progress markers live beside it in PATH.partial, and PATH.lock keeps a
# second writer out. A store written by another tool has no such attribute and counts as complete.
_WRITE_ATTR = "fluoxr_write"
_INTERNAL_ATTRS = (_WRITE_ATTR,)
_STORE_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
# zarr-python's temporary files (name.<32 hex>.partial), left inside a store by a kill mid-write
_ZARR_TMP = re.compile(r".*\.[0-9a-f]{32}\.partial$")


class IncompleteStoreError(ValueError):
    """A zarr store whose write was interrupted: resume it before reading it."""


def _public_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in _INTERNAL_ATTRS}


def _root_metadata(path: str) -> dict[str, Any] | None:
    """The parsed root ``zarr.json`` of a v3 store (None if absent or unreadable)."""
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _store_state(path: str) -> str | None:
    """None (nothing there), "empty" (an empty folder), "complete" or "incomplete" (a fluoxr store),
    "foreign" (a zarr store without fluoxr's write record), "broken" (zarr.json unreadable) or "other"."""
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path) or os.path.islink(path):
        return "other"
    if not os.listdir(path):
        return "empty"
    if os.path.exists(os.path.join(path, "zarr.json")):
        meta = _root_metadata(path)
        if meta is None:
            return "broken"
        record = (meta.get("attributes") or {}).get(_WRITE_ATTR)
        if isinstance(record, dict):
            return "complete" if record.get("complete") is True else "incomplete"
        return "foreign"
    if any(os.path.exists(os.path.join(path, m)) for m in _STORE_FILES):
        return "foreign"
    return "other"


def _write_record(path: str) -> dict[str, Any]:
    meta = _root_metadata(path) or {}
    record = (meta.get("attributes") or {}).get(_WRITE_ATTR)
    return record if isinstance(record, dict) else {}


def check_complete(path: PathLike) -> None:
    """Raise :class:`IncompleteStoreError` if ``path`` is a store whose write did not finish.

    A store fluoxr is writing is marked complete only after its last chunk, so a
    store that was interrupted (or copied or moved before it finished) is
    refused instead of read with its unwritten chunks as zeros.
    """
    text = os.path.abspath(os.fspath(path))
    state = _store_state(text)
    legacy = state == "foreign" and os.path.exists(text + _PARTIAL)  # written by fluoxr 0.1
    if state in ("incomplete", "broken") or legacy:
        raise IncompleteStoreError(
            f"path {os.fspath(path)!r} is an incomplete store: its write was interrupted. Finish it by running the "
            "same computation again with fluoxr.save(..., resume=True) (or the same command with --resume), "
            "or write it again with overwrite=True (--overwrite)"
        )


def _graph_sources(obj: xr.DataArray | xr.Dataset) -> set[str]:
    """Absolute paths of every file the object's graph reads, plus its ``source`` attributes."""
    return graph_inputs(obj) | attr_sources(obj)


def _json_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Attributes that zarr can store as JSON (None dropped, NumPy scalars and arrays converted)."""
    out = {}
    for k, v in attrs.items():
        if v is None or k in _INTERNAL_ATTRS:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError as exc:
            raise TypeError(f"obj: attribute {k!r} of {where} cannot be stored ({type(v).__name__})") from exc
        out[str(k)] = v
    return out


def _check_name(name: Any) -> None:
    """Refuse a variable or coordinate name that is not a valid zarr node name."""
    text = str(name)
    if (not text or "/" in text or "\\" in text or set(text) == {"."} or text.startswith("__")
            or text in _STORE_FILES or text != text.strip()):
        raise ValueError(
            f"obj: the variable name {text!r} cannot be stored in zarr (no '/', '\\\\', names of only dots, "
            f"leading '__', surrounding spaces or zarr's own file names); rename it first, "
            f"e.g. result.rename({{{text!r}: 'dff'}})"
        )


def _uniform_chunks(arr: da.Array) -> da.Array:
    """Rechunk to the regular chunking zarr needs (all equal but the last), if not already regular."""
    target = []
    regular = True
    for c in arr.chunks:
        size = c[0] if c else 1
        if any(n != size for n in c[:-1]) or (c and c[-1] > size):
            regular = False
            size = max(c)
        target.append(size)
    return arr if regular else arr.rechunk(tuple(target))


def _prepare_dataset(obj: xr.DataArray | xr.Dataset) -> xr.Dataset:
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else "data"
        _check_name(name)
        ds = obj.to_dataset(name=str(name))
        ds.attrs = dict(obj.attrs)
        ds[str(name)].attrs = {}
        ds.attrs["fluoxr_dataarray"] = str(name)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy()
    else:
        raise TypeError(f"obj must be an xarray DataArray or Dataset, got {type(obj).__name__}")
    ds.attrs = _json_attrs(ds.attrs, "the result")
    for name, var in ds.variables.items():
        _check_name(name)
        var.attrs = _json_attrs(var.attrs, repr(name))
        var.encoding = {}
        if not isinstance(var.data, (np.ndarray, da.Array)) and hasattr(var.data, "get"):
            var.data = var.data.get()  # an in-memory CuPy result -> host (dask blocks are moved as written)
        if isinstance(var.data, da.Array) and not _unknown_length(var.data):
            var.data = _uniform_chunks(var.data)
            var.encoding["chunks"] = tuple(c[0] for c in var.data.chunks)
        if var.dtype == object:
            raise TypeError(f"obj: variable {name!r} has dtype object, which zarr cannot store")
        if var.dtype.kind == "U" and isinstance(var.data, np.ndarray):
            # fixed-width unicode has no zarr v3 specification (other readers may not open it);
            # NumPy's variable-width strings do
            var.data = var.data.astype(np.dtypes.StringDType())
    return ds


def _unknown_length(arr: da.Array) -> bool:
    return any(math.isnan(c) for chunks in arr.chunks for c in chunks)


def _ragged_spec(ds: xr.Dataset) -> dict[str, Any] | None:
    """Variables of unknown length along their first dim (a lazily computed table): one shared dim and blocks."""
    names = [str(n) for n, v in ds.variables.items() if isinstance(v.data, da.Array) and _unknown_length(v.data)]
    if not names:
        return None
    first = {ds[n].dims[0] for n in names}
    nblocks = {ds[n].data.numblocks[0] for n in names}
    bad = [n for n in names if any(math.isnan(c) for chunks in ds[n].data.chunks[1:] for c in chunks)
           or any(len(c) != 1 for c in ds[n].data.chunks[1:])]
    if len(first) != 1 or len(nblocks) != 1 or bad:
        raise ValueError(
            f"obj: variables of unknown length {names} must share their first dim and its blocks, with every "
            f"other dim known and in one chunk (a table, like fluoxr.oscillations.oscillation_coordinates)"
        )
    dim = str(next(iter(first)))
    clash = [str(n) for n, v in ds.variables.items() if dim in v.dims and str(n) not in names]
    if clash:
        raise ValueError(f"obj: variables {clash} share the dim {dim!r} of unknown length; compute them first")
    return {"dim": dim, "nblocks": int(next(iter(nblocks))),
            "variables": {n: {"dims": [str(d) for d in ds[n].dims], "dtype": str(ds[n].dtype)} for n in names}}


def _plan(ds: xr.Dataset) -> dict[str, Any]:
    ragged = _ragged_spec(ds)
    skip = set(ragged["variables"]) if ragged else set()
    plan = {
        "format": "fluoxr-save-2",
        "variables": {
            str(n): {"shape": list(v.shape), "dtype": str(v.dtype),
                     "chunks": [list(c) for c in v.data.chunks]}
            for n, v in ds.variables.items() if isinstance(v.data, da.Array) and str(n) not in skip
        },
    }
    if ragged:
        plan["ragged"] = ragged
    return json.loads(json.dumps(plan))


# A table of unknown length is written in two steps: every block to its own
# .npy file in PATH.partial (marked when complete, so a resumed write skips it),
# then, once all lengths are known, the blocks are copied in order into zarr
# arrays. Memory: one block at a time.
_RAGGED_ROWS_PER_CHUNK = 1 << 20


def _touch_atomically(marker: str) -> None:
    with open(marker + ".tmp", "wb"):
        pass
    os.replace(marker + ".tmp", marker)


def _write_ragged_block(columns: Sequence[np.ndarray], names: Sequence[str], folder: str, index: int,
                        marker: str) -> int:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"obj: the variables {list(names)} of block {index} have different lengths {sorted(lengths)}")
    for name, col in zip(names, columns):
        if hasattr(col, "get") and not isinstance(col, np.ndarray):
            col = col.get()  # CuPy -> host
        target = os.path.join(folder, f"{index}.{name}.npy")
        with open(target + ".tmp", "wb") as fh:
            np.save(fh, np.asarray(col))
        os.replace(target + ".tmp", target)
    _touch_atomically(marker)
    return lengths.pop()


def _concat_ragged(results: Sequence[int], path: str, spec: Mapping[str, Any],
                   attrs: Mapping[str, Mapping[str, Any]]) -> str:
    import zarr

    folder = os.path.join(path + _PARTIAL, "ragged")
    group = zarr.open_group(path, mode="r+")
    group_attrs = dict(group.attrs)
    data = {}
    for name, var in spec["variables"].items():
        if name in group:
            del group[name]  # a previous attempt stopped half-way
        parts = [np.load(os.path.join(folder, f"{i}.{name}.npy"), mmap_mode="r") for i in range(spec["nblocks"])]
        arr = da.concatenate([da.from_array(p, chunks=-1) for p in parts], axis=0).astype(var["dtype"])
        rows = max(1, min(_RAGGED_ROWS_PER_CHUNK, arr.shape[0]))
        arr = arr.rechunk((rows,) + arr.shape[1:])
        data[name] = xr.Variable(var["dims"], arr, dict(attrs.get(name, {})), encoding={"chunks": arr.chunksize})
    # copying memory-mapped blocks is sequential I/O; keep it in this task
    xr.Dataset(data, attrs=group_attrs).to_zarr(path, mode="a", consolidated=False, zarr_format=3,
                                                compute=False).compute(scheduler="synchronous")
    return path


def _block_key(index: Sequence[int]) -> str:
    return ".".join(str(i) for i in index) or "0"


def _write_block(block: np.ndarray, store: str, var: str, region: tuple[slice, ...], marker: str) -> int:
    import zarr

    arr = zarr.open_array(store=store, path=var, mode="r+")
    if hasattr(block, "get") and not isinstance(block, np.ndarray):
        block = block.get()  # CuPy -> host
    arr[region] = np.asarray(block)
    # the marker is written only after the chunk: a chunk without one is rewritten on resume
    _touch_atomically(marker)
    return int(np.prod(np.shape(block)))  # a 0-d variable's block may be a Python scalar


def _count(parts: Sequence[int]) -> int:
    return int(sum(parts))


def _gather_tree(tasks: list, split_every: int = 8) -> list:
    """Join many write tasks through a tree of small tasks, not one task that waits for all of them.

    With a single final task depending on every write, dask's ordering lets
    the threaded scheduler read and compute far ahead of the writes behind
    map_overlap halos, so memory grows with the number of chunks; a tree
    (like a tree reduction) keeps it flat.
    """
    while len(tasks) > split_every:
        tasks = [dask.delayed(_count, pure=False)(tasks[i : i + split_every])
                 for i in range(0, len(tasks), split_every)]
    return tasks


def _mark_complete(path: str) -> None:
    """Set the store's write record to complete by an atomic rename of its root ``zarr.json``."""
    meta = _root_metadata(path)
    if meta is None:
        raise ValueError(f"path {path!r}: the store's zarr.json cannot be read; write it again with overwrite=True")
    record = dict((meta.get("attributes") or {}).get(_WRITE_ATTR) or {})
    record["complete"] = True
    meta.setdefault("attributes", {})[_WRITE_ATTR] = record
    target = os.path.join(path, "zarr.json")
    with open(target + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(target + ".tmp", target)
    fsync_dir(path)


def _remove_zarr_leftovers(path: str) -> None:
    """Delete temporary files a killed writer left inside the store (zarr's and fluoxr's own)."""
    for root, _, names in os.walk(path):
        for n in names:
            if _ZARR_TMP.match(n) or n == "zarr.json.tmp":
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, n))


def _finish(results: Sequence[int], path: str, lock: str, owner: str) -> str:
    _remove_zarr_leftovers(path)
    _mark_complete(path)  # atomic: the store counts as complete from here on
    _discard([path + _PARTIAL], path + _PARTIAL + ".done")
    release_lock(lock, owner)
    return path


def _clear_leftovers(path: str, *, progress: bool) -> None:
    """Remove the trash of a finished write, and with ``progress`` the progress folder too."""
    trash = path + _PARTIAL + ".done"
    _discard([path + _PARTIAL] if progress else [], trash)


def _refuse_different(path: str, shown: str, old: Mapping[str, Any], new: Mapping[str, Any], what: str) -> None:
    reasons = describe_fingerprint_change(old, new)
    if reasons:
        raise ValueError(
            f"path {shown!r} holds {what} of a different computation, so resume=True cannot continue it: "
            + "; ".join(reasons)
            + ". To start over, pass overwrite=True (on the command line --overwrite) or choose another path"
        )


def save(
    obj: xr.DataArray | xr.Dataset,
    path: PathLike,
    *,
    overwrite: bool = False,
    resume: bool = False,
    compute: bool = True,
    format: str | None = None,
) -> str | Any:
    """Write a fluoxr result to zarr chunk by chunk, with bounded memory, never losing data.

    What is promised:

    * Inputs are never written: an output that is, contains, or lies inside a
      file the result reads (found from the readers in its graph, symlinks and
      hard links resolved) is refused before anything is touched, and so are an
      empty path, ``"."`` and the working directory.
    * One writer at a time: a lock file ``PATH.lock`` is taken before the
      store is touched; a second writer fails at once naming the first. The
      lock is released when the write ends or the process exits, and taken over
      when the process that held it is gone.
    * The store records a fingerprint of what it holds (the result's dask
      token and the path, size and modification time of every input file) and
      is marked complete, atomically, only after its last chunk.
      :func:`open_result` and :func:`open_video` refuse an incomplete store,
      wherever it was copied or moved.
    * ``resume=True`` continues only the same computation on the same inputs
      (anything else is a ``ValueError`` saying what differs); chunks already
      written, each marked only after it is fully written (in the sibling
      ``PATH.partial`` folder), are not recomputed.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        Lazy or in-memory result. A DataArray is reopened as a DataArray by
        :func:`open_result` and :func:`open_video`. Variables of unknown
        length along their first dim (NaN chunks: a lazily computed table such
        as :func:`fluoxr.oscillations.oscillation_coordinates`) are written
        block by block and reopen with their length known. Other objects with
        a ``to_xarray()`` method are converted with it first. Variable names
        must be valid zarr names (no ``/``; not ``..`` or ``zarr.json``).
    path : path
        Target zarr store (a folder). Relative paths are resolved now, against
        the current working directory.
    overwrite : bool
        Replace an existing zarr store at ``path``. A path that is not a zarr
        store (or an empty folder) is never deleted.
    resume : bool
        Complete an interrupted write of the same result at ``path``; chunks
        already written are not recomputed. A completed store of the same
        result is left as is.
    compute : bool
        If False, write the metadata now and return a ``dask.delayed`` object
        that writes the data when computed (to run with a progress bar or on a
        cluster). The lock is held until that object has been computed (or
        this process exits).
    format : {"zarr", "ome-zarr"}, optional
        ``"zarr"``: a plain xarray zarr store. ``"ome-zarr"``: OME-NGFF 0.5
        images and labels that napari, Fiji and Neuroglancer open (see
        :mod:`fluoxr.io.ome_zarr` for the layout); everything above holds the
        same. Default: ``"ome-zarr"`` for a path ending in ``.ome.zarr``, else
        ``"zarr"``.

    Returns
    -------
    str or dask.delayed.Delayed
        The path, or the delayed write when ``compute=False``.

    Raises
    ------
    ValueError
        If ``path`` is refused (see above), exists (and neither ``overwrite``
        nor ``resume`` is set), is being written by another process, or holds
        a write of a different computation and ``resume`` is set.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.arange(24, dtype=np.uint16).reshape(6, 2, 2), fps=2.0)
    >>> fluoxr.save(v, "/tmp/doc_video.zarr", overwrite=True)
    '/tmp/doc_video.zarr'
    >>> fluoxr.open_video("/tmp/doc_video.zarr").attrs["fps"]
    2.0
    """
    if not isinstance(obj, (xr.DataArray, xr.Dataset)) and callable(getattr(obj, "to_xarray", None)):
        obj = obj.to_xarray()  # a lazy table (fluoxr.LazyTable) or a DataFrame
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise TypeError(f"obj must be an xarray DataArray or Dataset, got {type(obj).__name__}")
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: resume continues a write, overwrite starts over")
    from .ome_zarr import OmeLayout, resolve_format

    layout_format = resolve_format(format, path)
    inputs = graph_inputs(obj)
    apath = check_output_path(path, inputs | attr_sources(obj), name="path",
                              siblings=(_PARTIAL, _PARTIAL + ".done", LOCK_SUFFIX))
    shown = os.fspath(path).rstrip("/\\") or os.fspath(path)

    ds = _prepare_dataset(obj)
    layout = OmeLayout.plan(ds) if layout_format == "ome-zarr" else None
    plan = _plan(ds)
    if layout is not None:
        plan["layout"] = layout.fingerprint_plan()
    fingerprint = {"token": dask.base.tokenize(ds), "inputs": fingerprint_inputs(inputs), "plan": plan}

    partial = apath + _PARTIAL
    plan_file = os.path.join(partial, "plan.json")
    meta_done = os.path.join(partial, "metadata.done")
    lock = OutputLock(apath).acquire()
    try:
        job = _start_write(ds, apath, shown, fingerprint, lock, overwrite=overwrite, resume=resume,
                           partial=partial, plan_file=plan_file, meta_done=meta_done, layout=layout)
    except BaseException:
        lock.release()
        raise
    if job is None:  # resume of a complete store: nothing to write
        lock.release()
        return shown if compute else dask.delayed(lambda: shown)()
    if not compute:
        return job
    try:
        job.compute()
    finally:
        lock.release()  # already released by the last task when the write completed
    return shown


def _start_write(ds: xr.Dataset, path: str, shown: str, fingerprint: dict[str, Any], lock: Any, *,
                 overwrite: bool, resume: bool, partial: str, plan_file: str, meta_done: str,
                 layout: Any = None) -> Any:
    """Under the lock: decide what to do with what is at ``path``, write the metadata, return the delayed write.

    ``layout`` (an :class:`fluoxr.io.ome_zarr.OmeLayout`) writes the metadata and lists the chunk writes of
    another layout than xarray's; everything else (what is at ``path``, markers, completion) is the same.
    """
    state = _store_state(path)
    has_plan = os.path.exists(plan_file)
    resuming = False
    if resume:
        if state == "complete":
            _refuse_different(path, shown, _write_record(path), fingerprint, "a complete result")
            _clear_leftovers(path, progress=True)
            logger.info("%s is already complete; nothing to resume", shown)
            return None
        if has_plan:
            try:
                with open(plan_file) as fh:
                    recorded = json.load(fh)
            except (OSError, ValueError):
                recorded = {}
            if not (isinstance(recorded, dict) and "token" in recorded):
                raise ValueError(f"path {shown!r} holds an interrupted write that fluoxr cannot identify (written by "
                                 "an older version, or damaged); pass overwrite=True to start again")
            _refuse_different(path, shown, recorded, fingerprint, "an interrupted write")
            if state in ("other", "foreign"):
                raise ValueError(f"path {shown!r} was replaced by something fluoxr did not write since the interrupted "
                                 "write; move it away or pass overwrite=True")
            resuming = True
        elif state == "incomplete":
            # the store was moved or copied without its progress folder: same computation, written again
            _refuse_different(path, shown, _write_record(path), fingerprint, "an interrupted write")
            _remove_store(path, partial)
        elif state in ("other", "foreign"):
            raise ValueError(f"path {shown!r} exists and is not an interrupted fluoxr write; "
                             "pass overwrite=True to replace it, or choose another path")
        else:  # nothing written yet (killed before the plan), an empty folder or unreadable metadata
            _remove_store(path, partial)
    elif overwrite:
        if state == "other":
            raise ValueError(f"path {shown!r} exists and is not a zarr store; fluoxr will not delete it")
        _remove_store(path, partial)
    elif state is not None:
        raise ValueError(f"path {shown!r} already exists; pass overwrite=True to replace it "
                         "(or resume=True to finish an interrupted write)")
    elif os.path.exists(partial):
        raise ValueError(f"path {shown!r} has an interrupted write ({partial} is there); pass resume=True "
                         "to finish it or overwrite=True to start again")
    _clear_leftovers(path, progress=False)

    plan = fingerprint["plan"]
    ragged = plan.get("ragged")
    table = ds[list(ragged["variables"])] if ragged else None
    if ragged:
        ds = ds.drop_vars(list(ragged["variables"]))
    if not resuming:
        _discard([partial], partial + ".done")
        os.makedirs(os.path.join(partial, "done"), exist_ok=True)
        with open(plan_file + ".tmp", "w") as fh:
            json.dump(fingerprint, fh)
        os.replace(plan_file + ".tmp", plan_file)
    if not os.path.exists(meta_done) or _store_state(path) != "incomplete":
        # metadata, coordinates and in-memory variables are written now, dask data below; a run
        # killed before the marker writes them again (no data chunk is written before it)
        for stale in _marker_folders(partial):
            shutil.rmtree(stale, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(meta_done)
        if layout is not None:
            layout.write_metadata(path, {**fingerprint, "complete": False})
        else:
            ds = ds.copy()
            ds.attrs[_WRITE_ATTR] = {**fingerprint, "complete": False}
            ds.to_zarr(path, mode="w", compute=False, consolidated=False, zarr_format=3)
        _touch_atomically(meta_done)

    tasks = []
    if ragged:
        names = list(ragged["variables"])
        folder = os.path.join(partial, "ragged")
        os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.join(partial, "done", ragged["dim"]), exist_ok=True)
        # optimize_graph=False keeps the block keys: the columns of a block are computed once
        columns = [table[n].data.to_delayed(optimize_graph=False).reshape(-1) for n in names]
        for i in range(ragged["nblocks"]):
            marker = os.path.join(partial, "done", ragged["dim"], str(i))
            if os.path.exists(marker):
                continue
            tasks.append(dask.delayed(_write_ragged_block, pure=False)(
                [c[i] for c in columns], names, folder, i, marker))
        tasks = [dask.delayed(_concat_ragged, pure=False)(
            _gather_tree(tasks), path, ragged, {n: table[n].attrs for n in names})]
    if layout is not None:
        tasks += layout.tasks(path, partial)
    for name, var in ds.variables.items():
        if not isinstance(var.data, da.Array):
            continue
        name = str(name)
        if layout is not None:
            if name in {i.var for i in layout.images}:
                continue
            name = f"{_OME_XARRAY_GROUP}/{name}"  # coordinates and other variables: the plain xarray group
        os.makedirs(os.path.join(partial, "done", name), exist_ok=True)
        blocks = var.data.to_delayed(optimize_graph=True)
        starts = [np.cumsum((0,) + c) for c in var.data.chunks]
        for index in np.ndindex(*blocks.shape):
            marker = os.path.join(partial, "done", name, _block_key(index))
            if os.path.exists(marker):
                continue
            region = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))
            tasks.append(dask.delayed(_write_block, pure=False)(blocks[index], path, name, region, marker))
    if resuming:
        logger.info("resuming %s: %d chunk(s) left to write", shown, len(tasks))
    return dask.delayed(_finish, pure=False)(_gather_tree(tasks), path, lock.lock, lock.owner)


def _marker_folders(partial: str) -> list[str]:
    """Chunk-marker folders of a progress folder (cleared when the metadata is written again)."""
    done = os.path.join(partial, "done")
    return [os.path.join(done, n) for n in os.listdir(done)] if os.path.isdir(done) else []


def _discard(paths: Sequence[str], trash: str) -> None:
    """Move ``paths`` into the folder ``trash`` (one atomic rename each), then delete it.

    A kill at any point leaves each path either where it was or in the trash,
    which the next save deletes: never a half-deleted store at ``path``.
    """
    for p in paths:
        if os.path.lexists(p):
            os.makedirs(trash, exist_ok=True)
            os.replace(p, os.path.join(trash, f"{os.path.basename(p)}.{os.getpid()}.{len(os.listdir(trash))}"))
    shutil.rmtree(trash, ignore_errors=True)


def _remove_store(path: str, partial: str) -> None:
    """Delete a store fluoxr was writing (or replaces) and its progress folder."""
    _discard([path, partial], partial + ".done")


def _is_zarr_store(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zarray"))
