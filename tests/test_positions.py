"""Position helpers (optimap's) in fluoxr's (y, x) order."""

import numpy as np
import pytest

from fluoxr import collage_positions, positions_between, random_positions


def test_random_positions_inside_mask_distinct_and_seeded():
    mask = np.zeros((20, 30), bool)
    mask[5:8, 10:20] = True
    p = random_positions(mask, 25, seed=3)
    assert p.shape == (25, 2) and p.dtype == np.int64
    assert mask[p[:, 0], p[:, 1]].all() and len({tuple(r) for r in p}) == 25
    np.testing.assert_array_equal(p, random_positions(mask, 25, seed=3))
    # optimap's draw: Generator.choice over raveled pixels, without replacement
    idx = np.random.default_rng(3).choice(np.arange(mask.size), p=mask.ravel() / mask.sum(), size=25, replace=False)
    np.testing.assert_array_equal(p, np.stack(np.unravel_index(idx, mask.shape), 1))
    q = random_positions((8, 9), 72, seed=0)
    assert sorted(map(tuple, q)) == [(y, x) for y in range(8) for x in range(9)]
    with pytest.raises(ValueError, match="n must be at most"):
        random_positions(mask, 31)
    with pytest.raises(ValueError, match="shape_or_mask"):
        random_positions((3, 4, 5), 1)


def test_positions_between():
    np.testing.assert_array_equal(positions_between((2, 3), (2, 3), 4), [[2, 3]] * 4)
    p = positions_between((0, 0), (10, 5))
    assert len(p) == 11 and tuple(p[0]) == (0, 0) and tuple(p[-1]) == (10, 5)
    assert np.all(np.abs(np.diff(p, axis=0)) <= 1)
    np.testing.assert_array_equal(positions_between((0, 10), (6, 4), 4), [[0, 10], [2, 8], [4, 6], [6, 4]])
    with pytest.raises(ValueError, match="a must be one"):
        positions_between((1, 2, 3), (0, 0))
    with pytest.raises(ValueError, match="n must be >= 1"):
        positions_between((0, 0), (1, 1), 0)


def test_collage_positions_layout_and_input_untouched():
    pos = [np.array([[1, 2], [3, 4]]), np.array([[0, 0]]), np.array([[5, 6]])]
    before = [p.copy() for p in pos]
    out = collage_positions(pos, (10, 20), ncols=2)
    np.testing.assert_array_equal(out, [[1, 2], [3, 4], [0, 20], [15, 6]])
    for p, b in zip(pos, before):
        np.testing.assert_array_equal(p, b)
    with pytest.raises(ValueError, match="image_shape"):
        collage_positions(pos, (10,))


def test_collage_positions_rejects_fractions_and_bad_shapes():
    # integral floats are pixel positions (as ROISet.from_positions); fractions were silently truncated
    np.testing.assert_array_equal(collage_positions([[(1.0, 2.0)], [(3.0, 4.0)]], (10, 20), ncols=2),
                                  [[1, 2], [3, 24]])
    for bad, shown in (((1.5, 2.7), "1.5"), ((1.0, np.nan), "nan"), ((np.inf, 2.0), "inf")):
        with pytest.raises(ValueError, match=rf"^positions\[1\] must be integer pixel coordinates .* {shown}"):
            collage_positions([[(1, 2)], [bad]], (10, 10))
    with pytest.raises(ValueError, match=r"^positions\[0\] must be integer pixel coordinates .* dtype"):
        collage_positions([[("a", "b")]], (10, 10))
    with pytest.raises(ValueError, match=r"^positions\[0\] must be integer pixel coordinates .* dtype bool"):
        collage_positions([np.array([[True, False]])], (10, 10))
    for shape in (10, "ab", None, (10, 10, 3)):
        with pytest.raises(ValueError, match="^image_shape must be the image shape"):
            collage_positions([[(1, 2)]], shape)
    with pytest.raises(ValueError, match=r"^image_shape\[0\] must be an integer"):
        collage_positions([[(1, 2)]], (10.5, 10))
    with pytest.raises(TypeError, match=r"^image_shape\[1\] must be an integer"):
        collage_positions([[(1, 2)]], (10, "10"))
    with pytest.raises(TypeError, match="^positions must be a sequence"):
        collage_positions(5, (10, 10))
