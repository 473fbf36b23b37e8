# ---------------------------------------------------------------------------------------------------------------
# TEST ORACLE ONLY -- not part of fluoxr, never imported by it; used by tests/test_cluster_flux.py (peer tests).
# Copied unchanged from the project's peer oracles (/work/shared/peers/oracle/oracle_cluster_flux.py, written for
# fluoxr, BSD-3-Clause like fluoxr). It drives Cellects' ClusterFluxStudy (cellects_cluster_flux_study.py, GPL-3.0,
# not kept in this repository: benchmarks/peers/setup.sh fetches it into ~/.cache/fluoxr-peers/oracle/, which the
# test puts on sys.path) as Cellects' MotionAnalysis did. It needs OpenCV and Cellects' helpers
# cellects.image_analysis.morphological_operations (cellects 0.4.14); the test maps that name to
# cellects.image.morphological_operations of cellects 1.1.0, whose cc(), reduce_image_size_for_speed and
# get_minimal_distance_between_2_shapes are AST-identical, when only 1.1.0 is on the path.
# ---------------------------------------------------------------------------------------------------------------
"""Run a label video (0 none, 1 influx, 2 efflux) through Cellects' ClusterFluxStudy, as Cellects itself did.

ClusterFluxStudy (cellects_cluster_flux_study.py, fetched by benchmarks/peers/setup.sh: a verbatim copy from the Cellects git history,
GPL-3.0) ships in no PyPI release. Cellects drove it from MotionAnalysis (Aurele-B/Cellects @ e1fd190d, the parent of
368554b, src/cellects/core/motion_analysis.py, lines 1660-1795; the "oscilacyto_analysis" branch). This driver repeats
that loop line for line; only the fractal-analysis side branch, the logging and the unit conversions are left out:

    clusters_final_data = np.empty((0, 6), np.float32)        # ONE table for both kinds
    period_tracking = np.zeros((H, W), np.uint32)              # ONE array for both kinds
    efflux_study, influx_study = ClusterFluxStudy((T, H, W)), ClusterFluxStudy((T, H, W))
    for t in np.arange(max(start, lost_frames), T):
        contours = binary[t] - cv2.erode(binary[t], cross_33)  # a fresh array every frame ...
        influx, in_stats, _ = cc((labels[t] == 1).astype(np.uint8))
        efflux, ef_stats, _ = cc((labels[t] == 2).astype(np.uint8))
        if in_stats[1:].shape[0] + ef_stats[1:].shape[0] > 0:  # frames without any cluster are skipped entirely
            period_tracking, clusters_final_data = efflux_study.update_flux(t, contours, efflux, period_tracking, ...)
            period_tracking, clusters_final_data = influx_study.update_flux(t, contours, influx, period_tracking, ...)
                                                               # ... shared by the efflux and then the influx call

Consequences a reimplementation must reproduce (all are Cellects' behaviour, not choices of this driver):
  * efflux is updated before influx in every frame, and both share `period_tracking`: a pixel that goes straight
    from influx to efflux is first counted (+1) by the efflux call, then archived by the influx call with that extra
    frame and reset to 0, so its influx run is recorded one frame too long and its efflux run one frame too short;
  * update_flux writes 2 into `contours` for every archived cluster that does not touch the contour (its border if
    it has > 200 pixel records, all its pixels otherwise); the same array serves every later cluster of the frame, in
    both calls, so an archived cluster can find its "edge distance" to an earlier cluster's pixels (or touch them: 1);
  * `current_flux` is cc()'s relabelled image (components ranked by area, with cc()'s border "background swap"),
    so new clusters are numbered in that ranking; the numbers set the order in which clusters are archived within a
    call, hence which marks (next point) an archived cluster sees. cv2 numbers components in the row-major order of
    their first 2x2 block (rows taken in pairs; checked on 300 random images), not of their first pixel;
  * a frame with no cluster of either kind is not passed to update_flux at all (nothing is archived or counted then);
  * the edge distance is get_minimal_distance_between_2_shapes(contours), which first shrinks the image with
    reduce_image_size_for_speed: it keeps the quadrants (overlapping by one row/column) that hold both a 1 and a 2,
    gluing two adjacent ones together (the shared row/column then appears twice) and taking the first of three or
    four; the KD-tree minimum is taken in what is left. So it is not the true minimal distance, and with the 2s
    left by earlier clusters of the frame (previous point) it can even grow when more pixels are marked;
  * the table's columns are [mean_pixel_period, t (archive frame), number of pixel records, minimal distance to the
    contour (1 if touching), centro[1, 0], centro[1, 1]] where `centro` comes from cv2.connectedComponentsWithStats
    of the archived cluster's pixels: (x, y) of the component cv2 numbers 1 only (Cellects' column names
    'coord_y', 'coord_x' are swapped: column 4 is the x (column) coordinate, column 5 the y (row) coordinate).

Two places where Cellects' own result is not defined, and this driver defines it:
  * ties in cc()'s ranking. cc() ranks with np.argsort(stats[:, 4])[::-1], NumPy's default unstable sort, so equal
    areas come out in an order that depends on the NumPy build and the CPU (with AVX-512, NumPy 2.x sorts even
    5 elements unstably). This driver runs Cellects' cc() source with that one call made stable,
    np.argsort(stats[:, 4], kind="stable")[::-1]: equal areas rank the later cv2 label first. --numpy-ties runs
    cc() unchanged instead (then the result is that of this machine only). On a real recording about 2 % of the
    archived clusters got another edge distance from the tie order alone.
  * a stall: when exactly two DIAGONAL quadrants hold both shapes, reduce_image_size_for_speed reaches its
    `else: pass` branch, keeps the same sub-image and loops forever (Cellects hangs; this happens on real
    recordings, e.g. when the marked pixels lie in two opposite quadrants). There the driver stops at that sub-image
    -- the loop's fixed point, i.e. `pass` read as `break` -- and takes the KD-tree minimum in it, as Cellects would
    have done had the loop ended. Every other call goes to Cellects' own function unchanged (and the driver checks
    that its Python copy of the reduction agrees with Cellects' on those calls). The number of stalls is reported.

Usage (peer venv; cellects 0.4.14 provides cellects.image_analysis.morphological_operations):
    PYTHONPATH=$ALT/cellects-0.4.14 $VENV/bin/python oracle_cluster_flux.py LABELS.npz [--out TABLES.npz]
        [--csv TABLES.csv] [--start N] [--numpy-ties] [--separate-period-tracking] [--separate-contours]
LABELS.npz holds `labels` (T, H, W) with values 0/1/2 and either `contours` (H, W) uint8, 1 on the specimen's
contour, or `mask` (H, W) (then contours = mask - cv2.erode(mask, cross_33), as Cellects derives them from binary[t]);
optionally `start`. TABLES.npz gets `table` (N, 6) float32 (clusters_final_data, rows in Cellects' order), `kind`
(N,) int8 (1 influx, 2 efflux: which call appended the row), `centroid_y`, `centroid_x` (columns 5 and 4) and
`contours`. --separate-period-tracking gives each kind its own period_tracking, --separate-contours gives each
update_flux call a fresh copy of the contours (neither is what Cellects did; they exist to explain differences).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

COLUMNS = ("mean_pixel_period", "archive_frame", "size", "edge_distance", "cv2_centroid_x", "cv2_centroid_y")


def contours_from_mask(mask):
    """Cellects: contours = binary[t] - cv2.erode(binary[t], cross_33) (uint8, 1 on the inner border)."""
    import cv2
    from cellects.image_analysis.morphological_operations import cross_33
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    return binary - cv2.erode(binary, cross_33)


def reduce_image_size_python(image_of_2_shapes):
    """Cellects' reduce_image_size_for_speed (numba-compiled there), line for line in Python, except that the
    `else: pass` branch, where Cellects loops forever on an unchanged sub-image, returns it: (sub_image, stalled)."""
    sub_image = image_of_2_shapes.copy()
    y_size, x_size = sub_image.shape
    images_list = [sub_image]
    good_images = [0]
    sub_image = images_list[good_images[0]]
    while (len(good_images) == 1 or len(good_images) == 2) and y_size > 3 and x_size > 3:
        y_size, x_size = sub_image.shape
        images_list = []
        images_list.append(sub_image[:((y_size // 2) + 1), :((x_size // 2) + 1)])
        images_list.append(sub_image[:((y_size // 2) + 1), (x_size // 2):])
        images_list.append(sub_image[(y_size // 2):, :((x_size // 2) + 1)])
        images_list.append(sub_image[(y_size // 2):, (x_size // 2):])
        good_images = []
        for idx, image in enumerate(images_list):
            if np.any(image == 2):
                if np.any(image == 1):
                    good_images.append(idx)
        if len(good_images) == 0:
            break
        elif len(good_images) == 2:
            if good_images == [0, 1]:
                sub_image = np.concatenate((images_list[good_images[0]], images_list[good_images[1]]), axis=1)
            elif good_images == [0, 2]:
                sub_image = np.concatenate((images_list[good_images[0]], images_list[good_images[1]]), axis=0)
            elif good_images == [1, 3]:
                sub_image = np.concatenate((images_list[good_images[0]], images_list[good_images[1]]), axis=0)
            elif good_images == [2, 3]:
                sub_image = np.concatenate((images_list[good_images[0]], images_list[good_images[1]]), axis=1)
            else:
                return sub_image, True          # Cellects: `pass`, then the same iteration forever
        else:
            sub_image = images_list[good_images[0]]
    return sub_image, False


STALLS = []        # one entry per edge-distance call where Cellects would never return


def _guarded_minimal_distance(original_distance, original_reduce):
    from scipy.spatial import KDTree

    def get_minimal_distance_between_2_shapes(image_of_2_shapes, increase_speed=True):
        if increase_speed:
            sub_image, stalled = reduce_image_size_python(image_of_2_shapes)
            if stalled:
                STALLS.append(sub_image.shape)
                t = KDTree(np.transpose(np.nonzero(sub_image == 1)))
                dists, nns = t.query(np.transpose(np.nonzero(sub_image == 2)), 1)
                return np.min(dists)
            ref1, ref2 = original_reduce(image_of_2_shapes)           # Cellects' own reduction agrees with the copy
            assert all(np.array_equal(a, b) for a, b in zip(ref1 + ref2, np.nonzero(sub_image == 1) +
                                                            np.nonzero(sub_image == 2))), "reduction copy differs"
        return original_distance(image_of_2_shapes, increase_speed)
    return get_minimal_distance_between_2_shapes


_CC = {}


def cc_function(ties="stable"):
    """Cellects' cc(): unchanged (ties="numpy"), or its own source with the ranking sort made stable."""
    import inspect
    from cellects.image_analysis import morphological_operations as mo
    if ties == "numpy":
        return mo.cc
    if ties != "stable":
        raise ValueError(f"ties must be 'stable' or 'numpy', got {ties!r}")
    if "stable" not in _CC:
        src = inspect.getsource(mo.cc)
        old = "np.argsort(stats[:, 4])[::-1]"
        assert src.count(old) == 1, "cellects cc() source changed"
        namespace = dict(vars(mo))
        exec(compile(src.replace(old, 'np.argsort(stats[:, 4], kind="stable")[::-1]'), mo.__file__, "exec"), namespace)
        _CC["stable"] = namespace["cc"]
    return _CC["stable"]


def run(labels, contours, start=0, lost_frames=0, separate_period=False, separate_contours=False, ties="stable"):
    """Cellects' loop over frames; returns (clusters_final_data (N, 6) float32, kind (N,) int8)."""
    from cellects.image_analysis import morphological_operations as mo
    cc = cc_function(ties)
    import cellects_cluster_flux_study
    from cellects_cluster_flux_study import ClusterFluxStudy
    if not getattr(cellects_cluster_flux_study, "_stall_guard", False):
        cellects_cluster_flux_study.get_minimal_distance_between_2_shapes = _guarded_minimal_distance(
            mo.get_minimal_distance_between_2_shapes, mo.reduce_image_size_for_speed)
        cellects_cluster_flux_study._stall_guard = True
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be (T, H, W), got shape {labels.shape}")
    bad = np.setdiff1d(np.unique(labels), [0, 1, 2])
    if bad.size:
        raise ValueError(f"labels must hold 0, 1, 2 only, found {bad[:5]}")
    contours = np.ascontiguousarray(contours, dtype=np.uint8)
    if contours.shape != labels.shape[1:]:
        raise ValueError(f"contours must be {labels.shape[1:]}, got {contours.shape}")
    dims = labels.shape
    clusters_final_data = np.empty((0, 6), dtype=np.float32)
    period_tracking = np.zeros(dims[1:], dtype=np.uint32)
    own_period = {1: np.zeros(dims[1:], np.uint32), 2: np.zeros(dims[1:], np.uint32)}   # separate_period only
    efflux_study = ClusterFluxStudy(dims)
    influx_study = ClusterFluxStudy(dims)
    kinds = []
    for t in np.arange(np.max((start, lost_frames)), dims[0]):
        contours_t = contours.copy()                      # Cellects recomputes contours from binary[t] every frame
        oscillations_image = labels[t, ...]
        influx = (oscillations_image == 1).astype(np.uint8)
        efflux = (oscillations_image == 2).astype(np.uint8)
        influx, in_stats, in_centroids = cc(influx)
        efflux, ef_stats, ef_centroids = cc(efflux)
        in_stats = in_stats[1:]
        ef_stats = ef_stats[1:]
        oscillating_cluster_number = in_stats.shape[0] + ef_stats.shape[0]
        if oscillating_cluster_number > 0:
            for kind, study, flux in ((2, efflux_study, efflux), (1, influx_study, influx)):
                n0 = clusters_final_data.shape[0]
                c = contours.copy() if separate_contours else contours_t
                if separate_period:
                    own_period[kind], clusters_final_data = study.update_flux(
                        t, c, flux, own_period[kind], clusters_final_data)
                else:
                    period_tracking, clusters_final_data = study.update_flux(
                        t, c, flux, period_tracking, clusters_final_data)
                kinds += [kind] * (clusters_final_data.shape[0] - n0)
    return clusters_final_data, np.asarray(kinds, np.int8)


def tables(labels, contours, start=0, separate_period=False, separate_contours=False, ties="stable"):
    n0 = len(STALLS)
    data, kind = run(labels, contours, start=start, separate_period=separate_period,
                     separate_contours=separate_contours, ties=ties)
    return dict(table=data, kind=kind, centroid_y=data[:, 5].copy(), centroid_x=data[:, 4].copy(),
                contours=np.asarray(contours, np.uint8), columns=np.array(COLUMNS), stalls=len(STALLS) - n0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("labels", help="npz with `labels` (T, H, W) and `contours` or `mask` (H, W)")
    ap.add_argument("--out", help="write the tables here (npz)")
    ap.add_argument("--csv", help="write one CSV row per archived cluster here")
    ap.add_argument("--start", type=int, default=None, help="first frame of the loop (default: npz `start` or 0)")
    ap.add_argument("--numpy-ties", action="store_true",
                    help="run cc() unchanged: equal areas ranked by NumPy's unstable argsort (machine-dependent)")
    ap.add_argument("--separate-period-tracking", action="store_true",
                    help="one period_tracking per kind (not Cellects' behaviour; for comparison)")
    ap.add_argument("--separate-contours", action="store_true",
                    help="a fresh copy of the contours for every update_flux call (not Cellects'; for comparison)")
    ap.add_argument("--rows", type=int, default=10, help="rows of each table to print")
    a = ap.parse_args(argv)
    z = np.load(a.labels)
    labels = z["labels"]
    if "contours" in z.files:
        contours = z["contours"].astype(np.uint8)
    elif "mask" in z.files:
        contours = contours_from_mask(z["mask"])
    else:
        contours = contours_from_mask(np.ones(labels.shape[1:], np.uint8))
    start = a.start if a.start is not None else int(z["start"]) if "start" in z.files else 0
    res = tables(labels, contours, start=start, separate_period=a.separate_period_tracking,
                 separate_contours=a.separate_contours, ties="numpy" if a.numpy_ties else "stable")
    data, kind = res["table"], res["kind"]
    np.set_printoptions(suppress=True, linewidth=160)
    print(f"labels {labels.shape}, start {start}, contour pixels {int((contours == 1).sum())}: "
          f"{int((kind == 1).sum())} influx and {int((kind == 2).sum())} efflux clusters archived"
          + (" (NOT Cellects' shared state: --separate-...)" if a.separate_period_tracking or a.separate_contours
             else ""))
    if res["stalls"]:
        print(f"{res['stalls']} edge-distance call(s) where Cellects' reduce_image_size_for_speed loops forever: "
              "taken at the loop's fixed point (see the module docstring)")
    print("columns:", ", ".join(COLUMNS))
    for k, name in ((1, "influx"), (2, "efflux")):
        rows = data[kind == k]
        print(f"{name}: {rows.shape[0]} rows" + (f", first {min(a.rows, rows.shape[0])}:" if rows.shape[0] else ""))
        if rows.shape[0]:
            print(rows[:a.rows])
    if a.out:
        np.savez(a.out, **res)
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("kind," + ",".join(COLUMNS) + "\n")
            for k, row in zip(kind, data):
                f.write(("influx" if k == 1 else "efflux") + "," + ",".join(repr(float(x)) for x in row) + "\n")
    return res


if __name__ == "__main__":
    main()
