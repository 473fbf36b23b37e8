"""Spike deconvolution: OASIS without sparsity penalty, as suite2p's ``dcnv.oasis``, lazy over ROIs."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import xarray as xr

from ._validate import check_number
from ._video import check_traces
from .device import host
from .drivers import WHOLE, TemporalFilter, apply_temporal
from .kernels.oasis import oasis_rows
from .temporal import traces_fps

logger = logging.getLogger(__name__)

__all__ = ["oasis"]

# rows per task: about this many bytes of float32 trace, so that a few hundred ROIs already make
# several parallel tasks (the kernel is serial and releases the GIL)
_TASK_BYTES = 4e6


def _oasis_block(block: np.ndarray, *, before: int, after: int, tau_s: float, fps: float) -> np.ndarray:
    flat = block.reshape(-1, block.shape[-1])
    return oasis_rows(flat, tau_s, fps).reshape(block.shape)


# each trace is one sequential fit (every frame depends on the whole trace): a whole-recording filter,
# run once per block of ROIs
_OASIS = TemporalFilter(_oasis_block, halo=WHOLE, name="fluoxr-oasis")


def oasis(traces: xr.DataArray, *, tau_s: float, fps: float | None = None) -> xr.DataArray:
    """Deconvolved activity of each trace (OASIS, Friedrich et al. 2017), equal to suite2p's ``oasis``.

    Fits, per ROI, a calcium trace that decays by ``exp(-1 / (tau_s * fps))``
    per frame and jumps at spike times, by merging adjacent pools that
    violate the decay (pool-adjacent-violators, no sparsity penalty, no
    positivity constraint on the jumps). The output is the jump at the start
    of each pool (the first pool's start gives 0), so values can be negative
    as in suite2p. Computed in float32 exactly as suite2p does (equal to the
    last bit).

    Input should be baseline-subtracted (``traces - fluoxr.baseline(traces)``
    on neuropil-corrected traces, as suite2p's pipeline does).

    Lazy over ROIs: each trace is one sequential fit, so it runs on one chunk
    along time per block of ROIs (about 4 MB each, on parallel threads); the
    result has the chunks of ``traces``.

    Parameters
    ----------
    traces : DataArray
        Traces with a ``time`` dim.
    tau_s : float
        Indicator decay time constant in seconds (> 0).
    fps : float, optional
        Frame rate; default ``traces.attrs["fps"]``, else from the ``time``
        coordinate in seconds.

    Returns
    -------
    DataArray
        Same dims and coords as ``traces``, float32, named "spikes".

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.spikes import oasis
    >>> c = np.concatenate([np.zeros(5), 0.8 ** np.arange(20)]).astype(np.float32)
    >>> tr = xr.DataArray(c[None], dims=("roi", "time"), attrs={"fps": 10.0})
    >>> s = oasis(tr, tau_s=1 / (10 * np.log(1 / 0.8)))
    >>> int(s[0].argmax("time")), round(float(s.max()), 4)
    (5, 1.0)
    """
    traces = check_traces(traces)
    # OASIS is a sequential pool-merging loop per trace: it runs on the CPU (GPU traces are copied back)
    traces = host(traces, "fluoxr.oasis")
    tau_s = check_number(tau_s, "tau_s", gt=0)
    rate = traces_fps(traces, fps)
    t = traces.transpose(..., "time")
    data = t.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(-1,) * data.ndim)
    n_frames = data.shape[-1]
    rows = max(1, int(_TASK_BYTES // max(4 * n_frames, 1)))
    lead = {i: -1 for i in range(data.ndim - 1)}
    if data.ndim >= 2:
        lead[data.ndim - 2] = min(rows, max(1, data.shape[-2]))
    out = apply_temporal(data.astype(np.float32), _OASIS, axis=data.ndim - 1, whole_chunks=lead, dtype=np.float32,
                         meta=np.empty((0,) * data.ndim, np.float32), tau_s=tau_s, fps=rate)
    result = t.copy(data=out)
    result.name = "spikes"
    result.attrs = dict(traces.attrs) | {"tau_s": tau_s, "fps": rate}
    return result.transpose(*traces.dims)
