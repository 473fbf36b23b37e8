"""fluoxr.LazyTable: the one lazy table type of roi_features, track_clusters and oscillation_coordinates.

Building any of the three computes nothing; ``.compute()`` (and ``dask.compute``, ``dask.persist``, a
distributed client) gives the DataFrame the function gave before it was lazy; ``fluoxr.save`` writes it
and ``fluoxr.open_result`` reads it back.
"""

from __future__ import annotations

import pickle

import cloudpickle
import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import fluoxr
from fluoxr import features as F
from fluoxr import oscillations as O
from fluoxr.table import LazyTable
from fluoxr.testing import raise_if_dask_computes
from fluoxr.testing.references import track_clusters as ref_tracks


def _labels(n=30, chunks=7):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=n, shape=(32, 36), period_s=30, wavelength_px=24,
                                                     seed=2)
    labels = O.detect(video, period_s=truth.period_s, min_cluster_size=8, mask=truth.mask, start=2).compute()
    return labels.chunk({"time": chunks})


def _features_inputs():
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=20, shape=(40, 40), n_cells=6, red_fraction=0.5,
                                                   seed=3, chunks=6)
    return fluoxr.ROISet.from_suite2p(truth.stat, (40, 40)), video


def _frame(values):
    return pd.DataFrame({"a": np.asarray(values, np.int64), "b": np.asarray(values, np.float64) / 2})


META = _frame([])


# -- the three functions: lazy, and computing what they computed before -------------------------


def test_building_the_three_tables_computes_nothing():
    labels = _labels()
    rois, video = _features_inputs()
    with raise_if_dask_computes():
        tables = [O.oscillation_coordinates(labels), O.track_clusters(labels),
                  F.roi_features(rois, F.reference_image(video, channel=1), width=5),
                  video.fluo.roi_features(rois, channel=1, width=5),
                  F.roi_features(rois, np.ones((40, 40)), width=5)]
        # converting to xarray and preparing a save compute nothing either
        for t in tables:
            t.to_xarray()
    assert all(isinstance(t, LazyTable) for t in tables)
    assert O.CoordinateTable is LazyTable  # the old name, kept for one release


def test_coordinates_compute_the_nonzero_pixels():
    labels = _labels()
    table = O.oscillation_coordinates(labels)
    assert table.npartitions == len(labels.chunks[0]) and table.nrows is None
    assert table.dtypes.to_dict() == {"t": np.int32, "y": np.int32, "x": np.int32, "kind": np.int8}
    df = table.compute()
    t, y, x = np.nonzero(labels.values)
    expected = pd.DataFrame({"t": t, "y": y, "x": x, "kind": labels.values[t, y, x]}).astype(
        {"t": np.int32, "y": np.int32, "x": np.int32, "kind": np.int8})
    pd.testing.assert_frame_equal(df, expected, check_index_type=True)
    assert isinstance(df.index, pd.RangeIndex) and df.attrs["fps"] == 0.5


def test_tracks_compute_the_reference_table_and_the_deprecated_keyword_still_works():
    labels = _labels()
    table = O.track_clusters(labels, min_overlap=2)
    df = table.compute()
    expected = ref_tracks(labels.values, interval_s=2.0, start=2, min_overlap=2)
    pd.testing.assert_frame_equal(df.drop(columns="cluster").astype({"kind": str}), expected, check_dtype=False,
                                  rtol=1e-12)
    assert df.dtypes.equals(table.dtypes) and df.attrs == table.attrs == {
        "interval_s": 2.0, "n_frames": 30, "first_analysed_frame": 2}
    with pytest.warns(DeprecationWarning, match=r"call \.compute\(\)"):
        eager = O.track_clusters(labels, min_overlap=2, compute=True)
    pd.testing.assert_frame_equal(eager, df)
    assert isinstance(O.track_clusters(labels, compute=False), LazyTable)


def test_features_compute_once_and_equal_the_in_memory_reference():
    rois, video = _features_inputs()
    reference = F.reference_image(video, channel=1)
    table = F.roi_features(rois, reference, width=5, batch_size=4)
    assert table.npartitions == 2 and len(table) == table.nrows == len(rois)
    with raise_if_dask_computes(max_computes=1):  # the reference and every batch in one graph
        df = table.compute()
    eager = F.roi_features(rois, reference.values, width=5).compute()
    pd.testing.assert_frame_equal(df, eager, check_index_type=True)
    assert isinstance(df.index, pd.RangeIndex) and df.index.name == "roi" and df.attrs["width"] == 5
    assert list(df.columns) == list(F.FEATURES) and df.dtypes.equals(table.dtypes)
    # the same inputs give the same graph (so a save of the table can be resumed)
    assert dask.base.tokenize(table) == dask.base.tokenize(F.roi_features(rois, reference, width=5, batch_size=4))
    assert dask.base.tokenize(table) != dask.base.tokenize(F.roi_features(rois, reference, width=6, batch_size=4))


# -- a dask collection ----------------------------------------------------------------------------


def test_dask_compute_persist_and_delayed():
    labels = _labels()
    table = O.oscillation_coordinates(labels)
    expected = table.compute()
    (got,) = dask.compute(table)
    pd.testing.assert_frame_equal(got, expected)
    persisted = dask.persist(table)[0]
    assert isinstance(persisted, LazyTable) and persisted.npartitions == table.npartitions
    pd.testing.assert_frame_equal(persisted.compute(), expected)
    pd.testing.assert_frame_equal(table.persist().compute(), expected)
    # inside a delayed expression (as the command line computes several results at once)
    tracks = O.track_clusters(labels)
    n, df = dask.delayed(tuple)([dask.delayed(len)(expected), tracks]).compute()
    assert n == len(expected)
    pd.testing.assert_frame_equal(df, tracks.compute())


def test_persist_keeps_the_partitions_computed():
    calls = []

    def part(values):
        calls.append(1)
        return _frame(values)

    table = LazyTable([dask.delayed(part, pure=True)([1, 2]), dask.delayed(part, pure=True)([3])], META)
    persisted = table.persist()
    assert len(calls) == 2
    pd.testing.assert_frame_equal(persisted.compute(), _frame([1, 2, 3]))
    assert len(calls) == 2


def test_distributed_client_computes_and_persists_the_table():
    distributed = pytest.importorskip("distributed")
    labels = _labels()
    rois, video = _features_inputs()
    tables = [O.oscillation_coordinates(labels), O.track_clusters(labels),
              F.roi_features(rois, F.reference_image(video, channel=1), width=5, batch_size=4)]
    expected = [t.compute(scheduler="threads") for t in tables]
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        got = client.gather(client.compute(tables))
        persisted = client.persist(tables[0])
        again = persisted.compute()
    for g, e in zip(got, expected):
        pd.testing.assert_frame_equal(g, e)
    pd.testing.assert_frame_equal(again, expected[0])


def test_tables_pickle_for_distributed_workers():
    labels = _labels()
    rois, video = _features_inputs()
    for table in [O.oscillation_coordinates(labels), O.track_clusters(labels),
                  F.roi_features(rois, F.reference_image(video, channel=1), width=5)]:
        back = cloudpickle.loads(cloudpickle.dumps(table))
        assert repr(back) == repr(table) and back.attrs == table.attrs
        pd.testing.assert_frame_equal(back.compute(), table.compute())
    plain = LazyTable([dask.delayed(_frame)([1, 2])], META, attrs={"unit": "px"})
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(plain)).compute(), plain.compute())


# -- what is known without computing ---------------------------------------------------------------


def test_repr_meta_and_len():
    table = LazyTable([dask.delayed(_frame)([1, 2]), dask.delayed(_frame)([3])], META, dim="row")
    text = repr(table)
    assert text.splitlines()[0] == ("<fluoxr.LazyTable: 2 column(s), 2 partition(s), rows unknown until computed, "
                                    "dim 'row'>")
    assert "  a  int64" in text and "  b  float64" in text
    assert table.columns.tolist() == ["a", "b"] and table.meta.empty and table.nrows is None
    with pytest.raises(TypeError, match=r"number of rows of this lazy table is unknown until it is computed"):
        len(table)
    with pytest.raises(TypeError, match="truth value of a lazy table"):
        bool(table)
    known = LazyTable(table.to_delayed(), META, lengths=[2, 1])
    assert len(known) == 3 and "3 rows" in repr(known)
    coords = O.oscillation_coordinates(_labels())
    assert "kind  int8" in repr(coords) and "dim 'pixel'" in repr(coords)


# -- to_xarray, save, open_result ----------------------------------------------------------------


def test_tracks_save_and_open_result_round_trip(tmp_path):
    labels = _labels()
    table = O.track_clusters(labels)
    df = table.compute()
    arr = table.to_xarray()
    assert arr.dims == ("row", "field") and np.isnan(arr.shape[0]) and arr.dtype == np.float64
    assert arr.attrs["kind_flag_meanings"] == "influx efflux" and arr.attrs["kind_flag_values"] == [0, 1]
    path = tmp_path / "tracks.zarr"
    with raise_if_dask_computes():
        job = fluoxr.save(table, path, compute=False)
    job.compute()
    back = fluoxr.open_result(path)
    assert back.dims == ("row", "field") and list(back.field.values) == list(df.columns)
    got = back.to_pandas()
    got = got.astype({c: df[c].dtype for c in df.columns if c != "kind"})
    got["kind"] = pd.Categorical.from_codes(got["kind"].astype(int), categories=["influx", "efflux"])
    got.columns.name, got.index.name = None, None
    pd.testing.assert_frame_equal(got, df, check_index_type=False)
    assert back.attrs["interval_s"] == 2.0


def test_features_save_as_a_dataset(tmp_path):
    rois, video = _features_inputs()
    table = F.roi_features(rois, F.reference_image(video, channel=1), width=5, batch_size=4)
    ds = table.to_xarray()
    assert isinstance(ds, xr.Dataset) and dict(ds.sizes) == {"roi": len(rois)}
    assert ds["phase_corr"].chunks == ((4, len(rois) - 4),)
    fluoxr.save(table, tmp_path / "f.zarr")
    back = fluoxr.open_result(tmp_path / "f.zarr")
    assert isinstance(back, xr.Dataset) and back.attrs["width"] == 5
    pd.testing.assert_frame_equal(back.to_dataframe()[list(F.FEATURES)], table.compute(), check_index_type=False)


def test_resume_of_a_features_table_in_a_new_graph(tmp_path, monkeypatch):
    rois, video = _features_inputs()
    path = tmp_path / "f.zarr"
    make = lambda: F.roi_features(rois, F.reference_image(video, channel=1), width=5, batch_size=4)  # noqa: E731
    fluoxr.save(make(), path)
    fluoxr.save(make(), path, resume=True)  # the same computation: a complete store is left as is
    with pytest.raises(ValueError, match="different"):
        fluoxr.save(F.roi_features(rois, F.reference_image(video, channel=1), width=6), path, resume=True)


# -- zero rows ----------------------------------------------------------------------------------


def test_tables_of_zero_rows(tmp_path):
    labels = _labels() * 0
    coords = O.oscillation_coordinates(labels).compute()
    assert len(coords) == 0 and coords.dtypes.to_dict() == O.oscillation_coordinates(labels).dtypes.to_dict()
    tracks = O.track_clusters(labels)
    df = tracks.compute()
    assert len(df) == 0 and df.dtypes.equals(tracks.dtypes) and df["y_start"].dtype == np.float64
    fluoxr.save(tracks, tmp_path / "t.zarr")
    assert fluoxr.open_result(tmp_path / "t.zarr").shape == (0, len(df.columns))
    empty = LazyTable([dask.delayed(_frame)([]), dask.delayed(_frame)([])], META)
    pd.testing.assert_frame_equal(empty.compute(), META)
    known = LazyTable([dask.delayed(_frame)([])], META, lengths=[0])
    assert len(known) == 0 and dict(known.to_xarray().sizes) == {"row": 0}


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_messages():
    part = dask.delayed(_frame)([1])
    with pytest.raises(TypeError, match="parts must be a list of dask.delayed objects"):
        LazyTable(part, META)
    with pytest.raises(ValueError, match="parts must hold at least one partition"):
        LazyTable([], META)
    with pytest.raises(TypeError, match=r"parts must be dask.delayed objects .*\['DataFrame'\]"):
        LazyTable([_frame([1])], META)
    with pytest.raises(TypeError, match="meta must be a pandas.DataFrame"):
        LazyTable([part], {"a": np.int64})
    with pytest.raises(ValueError, match="meta must have unique, non-empty string column names"):
        LazyTable([part], pd.DataFrame({0: []}))
    with pytest.raises(ValueError, match="dim must be a non-empty string that is not a column name"):
        LazyTable([part], META, dim="a")
    with pytest.raises(ValueError, match="lengths must give a whole number >= 0 for each of the 1 partition"):
        LazyTable([part], META, lengths=[1, 2])
    with pytest.raises(ValueError, match="lengths"):
        LazyTable([part], META, lengths=[-1])
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        LazyTable([part], META, name="")
    wrong = LazyTable([dask.delayed(pd.DataFrame)({"c": [1]})], META)
    with pytest.raises(ValueError, match=r"partition 0 of the table has columns \['c'\], expected \['a', 'b'\]"):
        wrong.compute()
    with pytest.raises(TypeError, match="partition 0 of the table computed a list, not a DataFrame"):
        LazyTable([dask.delayed(list)([1])], META).compute()
    text = LazyTable([dask.delayed(pd.DataFrame)({"s": ["x"]})], pd.DataFrame({"s": pd.Series(dtype=object)}))
    with pytest.raises(TypeError, match="column 's' has dtype object, which fluoxr does not write"):
        text.to_xarray()
    huge = LazyTable([dask.delayed(pd.DataFrame)({"i": [2**62 + 1], "f": [0.5]})],
                     pd.DataFrame({"i": pd.Series(dtype=np.int64), "f": pd.Series(dtype=np.float64)}))
    with pytest.raises(ValueError, match="column 'i' holds integers that float64 cannot hold exactly"):
        huge.to_xarray().compute()
