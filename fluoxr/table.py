"""One lazy table type: every table result of fluoxr (ROI features, cluster tracks, influx/efflux pixels).

A :class:`LazyTable` is a list of *partitions*, each a ``dask.delayed``
object that computes a :class:`pandas.DataFrame`, plus an empty DataFrame
(the *meta*) that names the columns and their dtypes. Building one computes
nothing; it is a dask collection, so ``table.compute()``,
``dask.compute(table)``, ``dask.persist(table)`` and a distributed
``client.compute(table)`` all work, and :func:`fluoxr.save` writes it out of
core, one partition at a time (through :meth:`LazyTable.to_xarray`), and
:func:`fluoxr.open_result` reopens it.

The rows of the computed table are the partitions' rows in order; its index
is the row number (``0 .. n - 1``, named after the meta's index). The number
of rows is known before computing only when every partition's length is
(``lengths=``); otherwise ``len(table)`` is refused.

Examples
--------
>>> import dask, pandas as pd, fluoxr
>>> meta = pd.DataFrame({"a": pd.Series(dtype="int64")})
>>> parts = [dask.delayed(pd.DataFrame)({"a": [1, 2]}), dask.delayed(pd.DataFrame)({"a": [3]})]
>>> table = fluoxr.LazyTable(parts, meta)
>>> table.columns.tolist(), table.npartitions
(['a'], 2)
>>> table.compute()["a"].tolist()
[1, 2, 3]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
from dask.delayed import Delayed

if TYPE_CHECKING:  # pandas and xarray are imported where a table is built or converted
    import pandas as pd
    import xarray as xr

logger = logging.getLogger(__name__)

__all__ = ["LazyTable"]


def _optimize(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    # the partitions are delayed objects: optimised as dask.delayed optimises them (looked up when called,
    # so dask's "delayed_optimize" setting applies)
    return Delayed.__dask_optimize__(dsk, keys, **kwargs)


class LazyTable:
    """A table computed lazily, partition by partition: ``.compute()`` gives a :class:`pandas.DataFrame`.

    Parameters
    ----------
    parts : sequence of dask.delayed.Delayed
        One or more partitions, each computing a DataFrame with the columns
        of ``meta`` (in that order). Their rows, in order, are the table's.
    meta : pandas.DataFrame
        The columns and their dtypes (its rows, if any, are ignored); the
        name of its index names the computed table's index.
    dim : str
        Name of the row dimension of :meth:`to_xarray` (not a column name).
    lengths : sequence of int, optional
        Rows of each partition, when known without computing; then
        ``len(table)`` works and :meth:`to_xarray` has known chunks.
    attrs : mapping, optional
        Attributes of the computed DataFrame (``df.attrs``) and of
        :meth:`to_xarray`.
    name : str
        Name of the ``(dim, "field")`` DataArray that :meth:`to_xarray`
        gives while the number of rows is unknown.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.oscillations import oscillation_coordinates
    >>> labels = xr.DataArray(np.array([[[0, 1], [2, 0]]], np.int8), dims=("time", "y", "x"))
    >>> table = oscillation_coordinates(labels)     # nothing computed yet
    >>> table.columns.tolist(), table.nrows
    (['t', 'y', 'x', 'kind'], None)
    >>> table.compute().values.tolist()
    [[0, 0, 1, 1], [0, 1, 0, 2]]
    """

    __slots__ = ("_parts", "_meta", "_lengths", "attrs", "dim", "name")

    def __init__(self, parts: Sequence[Delayed], meta: pd.DataFrame, *, dim: str = "row",
                 lengths: Sequence[int] | None = None, attrs: Mapping[str, Any] | None = None,
                 name: str = "table") -> None:
        import pandas as pd

        if isinstance(parts, Delayed) or not isinstance(parts, Sequence):
            raise TypeError(f"parts must be a list of dask.delayed objects, got {type(parts).__name__}")
        parts = tuple(parts)
        if not parts:
            raise ValueError("parts must hold at least one partition (one that computes an empty DataFrame "
                             "makes an empty table)")
        bad = sorted({type(p).__name__ for p in parts if not isinstance(p, Delayed)})
        if bad:
            raise TypeError(f"parts must be dask.delayed objects (each computing a DataFrame), got {bad}")
        if not isinstance(meta, pd.DataFrame):
            raise TypeError(f"meta must be a pandas.DataFrame naming the columns and dtypes, got {type(meta).__name__}")
        names = list(meta.columns)
        if not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
            raise ValueError(f"meta must have unique, non-empty string column names, got {names}")
        if not isinstance(dim, str) or not dim or dim in names:
            raise ValueError(f"dim must be a non-empty string that is not a column name, got {dim!r}")
        if lengths is not None:
            lengths = tuple(lengths)
            if len(lengths) != len(parts) or not all(
                    isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in lengths):
                raise ValueError(f"lengths must give a whole number >= 0 for each of the {len(parts)} "
                                 f"partition(s), got {lengths}")
            lengths = tuple(int(n) for n in lengths)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self._parts = parts
        self._meta = meta.iloc[:0]
        self._lengths = lengths
        self.attrs = dict(attrs or {})
        self.dim = dim
        self.name = name

    # ---- what is known without computing

    @property
    def columns(self) -> pd.Index:
        """The column names."""
        return self._meta.columns

    @property
    def dtypes(self) -> pd.Series:
        """The dtype of every column."""
        return self._meta.dtypes

    @property
    def meta(self) -> pd.DataFrame:
        """An empty DataFrame with the columns, dtypes and index name of the computed table."""
        return self._meta.copy()

    @property
    def npartitions(self) -> int:
        """Number of partitions (each one task's DataFrame)."""
        return len(self._parts)

    @property
    def nrows(self) -> int | None:
        """Number of rows when known without computing, else None."""
        return None if self._lengths is None else sum(self._lengths)

    def __len__(self) -> int:
        if self._lengths is None:
            raise TypeError(f"the number of rows of this lazy table is unknown until it is computed "
                            f"({self.npartitions} partition(s) of unknown length): use len(table.compute()), "
                            "or save it with fluoxr.save and read the length back")
        return sum(self._lengths)

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a lazy table is ambiguous (its rows are unknown until computed); "
                        "compute it first, or test `table is None`")

    def __repr__(self) -> str:
        rows = "rows unknown until computed" if self._lengths is None else f"{self.nrows} rows"
        head = (f"<fluoxr.LazyTable: {len(self.columns)} column(s), {self.npartitions} partition(s), {rows}, "
                f"dim {self.dim!r}>")
        width = max((len(c) for c in self.columns), default=0)
        return "\n".join([head] + [f"  {c:<{width}}  {t}" for c, t in self.dtypes.items()])

    def to_delayed(self) -> list[Delayed]:
        """The partitions, one ``dask.delayed`` DataFrame each."""
        return list(self._parts)

    # ---- dask collection protocol: the partitions' keys, their graphs merged

    def __dask_graph__(self) -> Any:
        # a Delayed depending on every partition has their graphs merged by dask; its own one
        # small task (a tuple of the partitions) is culled by the optimizer
        return dask.delayed(_partition_tuple, pure=True)(*self._parts).__dask_graph__()

    def __dask_keys__(self) -> list:
        return [p.key for p in self._parts]

    def __dask_layers__(self) -> tuple:
        return tuple(dict.fromkeys(layer for p in self._parts for layer in p.__dask_layers__()))

    def __dask_tokenize__(self) -> Any:
        return (type(self).__name__, self.__dask_keys__(), list(self.columns), [str(t) for t in self.dtypes],
                self._meta.index.name, self._lengths, self.dim, self.name)

    __dask_optimize__ = staticmethod(_optimize)
    __dask_scheduler__ = staticmethod(Delayed.__dask_scheduler__)

    def __dask_postcompute__(self) -> tuple:
        return _concat_partitions, (self._meta, self.attrs)

    def __dask_postpersist__(self) -> tuple:
        return _rebuild_table, (self,)

    def compute(self, **kwargs: Any) -> pd.DataFrame:
        """The table as a DataFrame; keyword arguments go to :func:`dask.compute`."""
        (df,) = dask.compute(self, **kwargs)
        return df

    def persist(self, **kwargs: Any) -> LazyTable:
        """The same table with its partitions computed and held in memory (or on a cluster)."""
        (out,) = dask.persist(self, **kwargs)
        return out

    # ---- to xarray (what fluoxr.save writes)

    def to_xarray(self) -> xr.Dataset | xr.DataArray:
        """The table as lazy xarray: what :func:`fluoxr.save` writes, block by block, and ``open_result`` reopens.

        * Rows known (:attr:`nrows`): a Dataset, one variable per column along
          :attr:`dim`, with the row numbers as its coordinate.
        * Rows unknown: one DataArray :attr:`name` with dims ``(dim,
          "field")`` (``dim`` of unknown length: NaN chunks, one per
          partition), the columns converted to their common dtype (int32 for
          the coordinates table, float64 for the cluster tracks). xarray
          holds only one variable along a dimension of unknown length (it
          compares sizes, and NaN equals nothing), hence one 2-D array. A
          column whose values the common dtype cannot hold exactly (integers
          beyond 2**53 in float64) is a ValueError when written.

        Categorical columns become their integer codes, the categories named
        in ``flag_values`` and ``flag_meanings`` attributes (``COLUMN_flag_...``
        in the 2-D form). Other columns must hold numbers or booleans.
        """
        import dask.array as da
        import xarray as xr

        stored = {name: _stored_dtype(name, dtype) for name, dtype in self.dtypes.items()}
        if self._lengths is None:
            dtype = np.result_type(*(d for d, _ in stored.values()))
            blocks = [da.from_delayed(dask.delayed(_matrix, pure=True)(p, dtype), shape=(math.nan, len(stored)),
                                      dtype=dtype, meta=np.empty((0, 0), dtype))
                      for p in self._parts]
            # variable-length strings: zarr v3 has a specification for them, not for fixed-length ones
            string = getattr(np.dtypes, "StringDType", None)
            fields = np.array(list(self.columns), dtype=string() if string is not None else None)
            attrs = dict(self.attrs)
            for name, (_, flags) in stored.items():
                attrs.update({f"{name}_{key}": value for key, value in flags.items()})
            return xr.DataArray(da.concatenate(blocks, axis=0), dims=(self.dim, "field"), coords={"field": fields},
                                attrs=attrs, name=self.name)
        variables = {}
        for name, (dtype, flags) in stored.items():
            blocks = [da.from_delayed(dask.delayed(_column, pure=True)(p, name, dtype), shape=(n,), dtype=dtype,
                                      meta=np.empty((0,), dtype))
                      for p, n in zip(self._parts, self._lengths)]
            variables[name] = xr.Variable((self.dim,), da.concatenate(blocks), flags)
        # the row numbers in memory, so that making them an index computes nothing
        coords = {self.dim: np.arange(self.nrows, dtype=np.int64)}
        return xr.Dataset(variables, coords=coords, attrs=self.attrs)


def _partition_tuple(*parts: Any) -> tuple:
    return parts


def _concat_partitions(parts: Sequence[Any], meta: pd.DataFrame, attrs: Mapping[str, Any]) -> pd.DataFrame:
    """The computed partitions as one DataFrame: rows in order, index ``0 .. n - 1``, meta's dtypes, ``attrs``."""
    import pandas as pd

    parts = list(parts)
    for i, part in enumerate(parts):
        if not isinstance(part, pd.DataFrame):
            raise TypeError(f"partition {i} of the table computed a {type(part).__name__}, not a DataFrame")
        if list(part.columns) != list(meta.columns):
            raise ValueError(f"partition {i} of the table has columns {list(part.columns)}, "
                             f"expected {list(meta.columns)}")
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    if not df.dtypes.equals(meta.dtypes):
        # empty partitions can come back with other dtypes (object columns of an empty frame)
        df = df.astype(meta.dtypes.to_dict())
    df.index = df.index.rename(meta.index.name)
    df.attrs = dict(attrs)
    return df


def _rebuild_table(dsk: Any, table: LazyTable, *, rename: Mapping[str, str] | None = None) -> LazyTable:
    parts = []
    for p in table._parts:
        rebuild, args = p.__dask_postpersist__()
        parts.append(rebuild(dsk, *args, rename=rename))
    return LazyTable(parts, table._meta, dim=table.dim, lengths=table._lengths, attrs=table.attrs,
                     name=table.name)


def _stored_dtype(name: str, dtype: Any) -> tuple[np.dtype, dict[str, Any]]:
    """The NumPy dtype a column is stored as, and the attributes that say how to read it."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        categories = [str(c) for c in dtype.categories]
        if any(" " in c for c in categories):
            raise TypeError(f"column {name!r}: categories with spaces cannot be named in flag_meanings, "
                            f"got {categories}")
        codes = pd.Categorical([], categories=dtype.categories).codes.dtype
        return np.dtype(codes), {"flag_values": list(range(len(categories))), "flag_meanings": " ".join(categories)}
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return dtype, {}
    raise TypeError(f"column {name!r} has dtype {dtype}, which fluoxr does not write; store numbers, booleans "
                    "or a categorical")


def _column(part: pd.DataFrame, name: str, dtype: np.dtype) -> np.ndarray:
    col = part[name]
    if hasattr(col, "cat"):
        return np.asarray(col.cat.codes, dtype=dtype)
    return col.to_numpy(dtype=dtype)


def _matrix(part: pd.DataFrame, dtype: np.dtype) -> np.ndarray:
    out = np.empty((len(part), part.shape[1]), dtype)
    for j, name in enumerate(part.columns):
        col = part[name]
        values = np.asarray(col.cat.codes) if hasattr(col, "cat") else col.to_numpy()
        out[:, j] = values
        lossy = values.dtype.kind in "iu" and dtype.kind == "f"
        if lossy and not np.array_equal(out[:, j].astype(values.dtype), values):
            raise ValueError(f"column {name!r} holds integers that {dtype} cannot hold exactly; save the table's "
                             "DataFrame (table.compute()) instead")
    return out
