"""The registry of NumPy references (``fluoxr.testing.references``): each fluoxr function against its reference.

Every entry of :data:`~fluoxr.testing.references.COMPARISONS` runs on its tiny
example; lazy entries also over several chunkings (whole, one frame, uneven,
smaller than the halo) without computing while the graph is built. The tests
at the end check the references themselves on cases worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from fluoxr.testing import assert_chunk_invariant
from fluoxr.testing.references import COMPARISONS
from fluoxr.testing.references import components_cellects_like as ref_components_cellects_like
from fluoxr.testing.references import neighbour_vote as ref_vote
from fluoxr.testing.references import track_clusters as ref_tracks

KERNELS = [name for name, c in COMPARISONS.items() if not c.lazy]
LAZY = [name for name, c in COMPARISONS.items() if c.lazy]


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_matches_its_reference(name):
    c = COMPARISONS[name]
    x = c.example()
    c.check(c.fluoxr(x), c.reference(x))


@pytest.mark.parametrize("name", LAZY)
def test_lazy_operation_matches_its_reference_for_every_chunking(name):
    c = COMPARISONS[name]
    video = c.example()
    got = assert_chunk_invariant(c.fluoxr, video, halo=c.halo, rtol=max(c.rtol, 1e-12), atol=0.0)
    c.check(got, c.reference(video.values))


def test_registry_pairs_are_complete():
    assert KERNELS and LAZY
    for name, c in COMPARISONS.items():
        assert callable(c.reference) and callable(c.fluoxr) and callable(c.example), name


# -- the references on cases worked out by hand --------------------------------------------------


def test_ref_vote_counts_replicated_edges():
    sign = np.zeros((4, 5), np.int8)
    sign[:2, :2] = 1
    influx, efflux = ref_vote(sign)
    # border pixels count themselves through replicated neighbours (corner: 8 of 8, edges: 5 of 8),
    # the fourth pixel of the block has only 3 positive neighbours
    assert sorted(zip(*np.nonzero(influx))) == [(0, 0), (0, 1), (1, 0)] and not efflux.any()


def test_ref_components_background_swap():
    # a cluster larger than the background: cc() takes it for the background, and the hole for a cluster
    mask = np.ones((6, 6), bool)
    mask[2:4, 2:4] = False
    keep = ref_components_cellects_like(mask, 1)
    assert np.array_equal(keep, ~mask)
    # two items touching 3 borders: the second largest is dropped, whatever it is
    band = np.zeros((6, 6), bool)
    band[:, :4] = True
    assert np.array_equal(ref_components_cellects_like(band, 1), band)


def test_ref_tracks_split_and_merge():
    labels = np.zeros((4, 6, 9), np.int8)
    labels[0, 1:4, 1:8] = 1         # one patch
    labels[1, 1:4, 1:3] = 1         # splits into two
    labels[1, 1:4, 6:8] = 1
    labels[2, 1:4, 6:8] = 1         # one part ends, the other goes on
    table = ref_tracks(labels)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.first_frame, row.last_frame, row.area_max) == (0, 2, 21)
