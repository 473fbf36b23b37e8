"""zarr v2/v3 stores: plain arrays, and groups written by :func:`fluoxr.save`."""

from __future__ import annotations

import json
import os
import warnings

import dask.array as da
import xarray as xr

from .._video import ChunksLike, default_dims, normalize_chunks_arg
from .store import _public_attrs, check_complete

def _consolidated(path: str) -> bool:
    """Whether a zarr store has consolidated metadata (v2 ``.zmetadata`` or v3 inline)."""
    if os.path.exists(os.path.join(path, ".zmetadata")):
        return True
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            return bool(json.load(fh).get("consolidated_metadata"))
    except (OSError, ValueError):
        return False


def _open_zarr_any(path: str, chunks: ChunksLike) -> xr.DataArray:
    import zarr

    check_complete(path)

    try:
        node = zarr.open(store=path, mode="r")
    except Exception as exc:
        raise ValueError(f"path {path!r} is not a readable zarr store: {exc}") from exc
    if isinstance(node, zarr.Array):
        base = node.chunks
        dims_ = default_dims(node.ndim)
        dchunks = normalize_chunks_arg(chunks, dims_, node.shape, node.dtype.itemsize, base=base)
        data = da.from_zarr(node, chunks=dchunks)
        attrs = dict(node.attrs)
        return xr.DataArray(data, dims=dims_, attrs={k: attrs[k] for k in ("fps", "pixel_size") if k in attrs})
    ds = xr.open_zarr(path, chunks=None, consolidated=_consolidated(path))
    name = ds.attrs.get("fluoxr_dataarray")
    if name is None:
        if len(ds.data_vars) != 1:
            raise ValueError(
                f"path {path!r} holds several variables {list(ds.data_vars)}; use fluoxr.open_result(path) "
                "and pick one"
            )
        name = next(iter(ds.data_vars))
    var = ds[name]
    enc_chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
    base = tuple(enc_chunks) if isinstance(enc_chunks, (tuple, list)) else None
    dchunks = normalize_chunks_arg(chunks, var.dims, var.shape, var.dtype.itemsize, base=base)
    with warnings.catch_warnings():
        # small coordinates stored as one chunk are split by the data's chunks; harmless
        warnings.filterwarnings("ignore", message=".*separate the stored chunks", category=UserWarning)
        ds = xr.open_zarr(path, chunks=dict(zip(var.dims, dchunks)), consolidated=_consolidated(path))
    out = ds[name]
    out.attrs = {k: v for k, v in _public_attrs(ds.attrs).items() if k != "fluoxr_dataarray"} | dict(out.attrs)
    return out
