"""Magnitude pruning and relative-index (gap + filler) encoding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dcformat.compress import gaps_to_positions, positions_to_gaps, prune_mask, pruned_count
from dcformat.errors import InvalidSettings

weights = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20),
                     elements=st.floats(-4, 4, width=32) | st.sampled_from([0.0, 1.0, -1.0]))


@given(weights, st.floats(0.0, 1.0, exclude_max=True))
def test_sparsity_is_exact_and_removes_the_smallest(w, sparsity):
    keep = prune_mask(w, sparsity=sparsity)
    assert keep.shape == w.shape
    assert np.count_nonzero(~keep) == pruned_count(w.size, sparsity) == round(sparsity * w.size)
    if keep.any() and (~keep).any():
        assert np.abs(w[~keep]).max() <= np.abs(w[keep]).min()


def test_ties_go_in_c_order():
    w = np.array([[1.0, 0.5, -0.5], [0.5, 2.0, -0.5]])
    keep = prune_mask(w, sparsity=0.5)  # 3 of the four 0.5s go: the first three in C order
    assert keep.tolist() == [[True, False, False], [False, True, True]]
    assert np.array_equal(prune_mask(w, sparsity=0.5), keep)


def test_ties_are_deterministic_in_fortran_order_input():
    w = np.asfortranarray(np.ones((4, 5)))
    keep = prune_mask(w, sparsity=0.25)
    assert (~keep).ravel().tolist() == [True] * 5 + [False] * 15


@given(weights, st.floats(0.0, 3.0))
def test_quality_threshold(w, q):
    keep = prune_mask(w, quality=q)
    t = q * np.std(w.astype(np.float64))
    assert np.array_equal(keep, np.abs(w.astype(np.float64)) >= t)


def test_quality_zero_keeps_everything():
    w = np.random.default_rng(0).standard_normal((10, 10))
    assert prune_mask(w, quality=0.0).all()


def test_quality_on_extreme_float64():
    w = np.random.default_rng(0).standard_normal(1000) * 1e300
    keep = prune_mask(w, quality=1.0)
    assert 0.25 < keep.mean() < 0.4  # about 32 % of a normal lies beyond one std


@pytest.mark.parametrize("kwargs", [{}, dict(sparsity=0.5, quality=1.0), dict(sparsity=1.0), dict(quality=-1.0)])
def test_prune_mask_refuses(kwargs):
    with pytest.raises(InvalidSettings):
        prune_mask(np.ones(4), **kwargs)


def test_empty():
    assert prune_mask(np.zeros((0, 3)), sparsity=0.5).shape == (0, 3)
    assert prune_mask(np.zeros((0, 3)), quality=1.0).shape == (0, 3)


# --- gaps and fillers ------------------------------------------------------------


@st.composite
def positions_and_bits(draw):
    gap_bits = draw(st.integers(1, 16))
    skips = draw(st.lists(st.integers(0, 3 * (1 << gap_bits) + 2) | st.sampled_from(
        [(1 << gap_bits) - 1, 1 << gap_bits, (1 << gap_bits) + 1, 2 << gap_bits]), max_size=40))
    return np.cumsum(np.array(skips, np.int64) + 1) - 1, gap_bits


@given(positions_and_bits())
def test_gaps_reconstruct_positions(pb):
    positions, gap_bits = pb
    g = positions_to_gaps(positions, gap_bits)
    assert g.gaps.dtype == np.uint16 and (g.gaps.astype(np.int64) < (1 << gap_bits)).all()
    placed = gaps_to_positions(g.gaps)
    assert np.array_equal(placed[g.kept_index], positions)
    fillers = np.setdiff1d(np.arange(g.entries), g.kept_index)
    assert g.fillers == fillers.size
    assert (g.gaps[fillers] == (1 << gap_bits) - 1).all()
    # the fewest fillers that bridge every skip
    skips = np.diff(positions, prepend=-1) - 1
    assert g.fillers == int(np.sum(skips // (1 << gap_bits)))


def test_long_runs():
    # gap_bits 4: max gap 15; a skip of 100 needs 100 // 16 = 6 fillers and a gap of 4;
    # a skip of 15 fits; a skip of 32 needs 2 fillers and a gap of 0.
    g = positions_to_gaps(np.array([100, 101, 117, 150]), 4)
    assert g.gaps.tolist() == [15] * 6 + [4, 0, 15] + [15, 15, 0]
    assert gaps_to_positions(g.gaps)[g.kept_index].tolist() == [100, 101, 117, 150]


def test_max_gap_needs_no_filler():
    assert positions_to_gaps(np.array([15]), 4).gaps.tolist() == [15]
    assert positions_to_gaps(np.array([16]), 4).gaps.tolist() == [15, 0]


def test_bad_positions():
    with pytest.raises(InvalidSettings):
        positions_to_gaps(np.array([3, 3]), 4)
    with pytest.raises(InvalidSettings):
        positions_to_gaps(np.array([-1]), 4)
    with pytest.raises(InvalidSettings):
        positions_to_gaps(np.array([1]), 17)
