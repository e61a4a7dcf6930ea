"""1-D k-means: initialisations, exact Lloyd against a naive O(nk) Lloyd, nearest codes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dcformat.compress import assign, initial_centroids, kmeans_1d
from dcformat.compress.kmeans import TIE_BITS, _rounded
from dcformat.errors import InvalidSettings


def naive_lloyd(x, k, init, iterations, seed=0):
    """Lloyd with an argmin over all centroids per value; same empty-cluster rule."""
    x = np.asarray(x, np.float64)
    c = initial_centroids(np.sort(x), k, init, seed).astype(np.float64)
    previous, history, converged, done = None, [], False, 0
    for _ in range(iterations):
        labels = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)  # ties: lower (c ascending)
        new, filled = c.copy(), np.zeros(c.size, bool)
        for j in range(c.size):
            if (labels == j).any():
                new[j], filled[j] = x[labels == j].mean(), True
        history.append(float(np.sum((x - new[labels]) ** 2)))
        done += 1
        if filled.all() and previous is not None and np.array_equal(labels, previous):
            converged, c = True, new
            break
        previous = labels
        if not filled.all():
            # move empty centroids onto cluster ends farthest from their centroid
            cand = [(x[labels == j].min(), new[j]) for j in range(c.size) if filled[j]]
            cand += [(x[labels == j].max(), new[j]) for j in range(c.size) if filled[j]]
            cand = sorted(((-float(_rounded(np.float64((v - m) ** 2), TIE_BITS)), v) for v, m in cand if v != m))
            for j, (_, v) in zip(np.flatnonzero(~filled), cand):
                new[j] = v
            previous = None
        c = np.sort(new)
    c = np.unique(c)
    used = np.unique(np.argmin(np.abs(x[:, None] - c[None, :]), axis=1))
    return c[used], done, converged, history


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 150), k=st.integers(1, 12),
       init=st.sampled_from(["linear", "density", "random"]), iterations=st.integers(0, 40),
       dist=st.sampled_from(["normal", "t", "uniform"]))
def test_matches_naive_lloyd(seed, n, k, init, iterations, dist):
    rng = np.random.default_rng(seed)
    x = {"normal": rng.standard_normal, "uniform": rng.random,
         "t": lambda n: rng.standard_t(1.5, n)}[dist](n)
    r = kmeans_1d(x, k, init=init, iterations=iterations, seed=seed)
    c, done, converged, history = naive_lloyd(x, k, init, iterations, seed)
    if np.unique(x).size <= k:  # shortcut: the distinct values themselves
        assert np.array_equal(r.centroids, np.unique(x)) and r.sse == 0.0
        return
    np.testing.assert_allclose(r.centroids, c, rtol=1e-9, atol=1e-12)
    assert (r.iterations, r.converged) == (done, converged)
    np.testing.assert_allclose(r.sse_history, history, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("init", ["linear", "density", "random"])
@pytest.mark.parametrize("dist", ["normal", "t"])
def test_sse_never_increases(init, dist):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20000) if dist == "normal" else rng.standard_t(1.5, 20000)
    r = kmeans_1d(x.astype(np.float32), 64, init=init, iterations=500)
    h = np.array(r.sse_history)
    assert h.size == r.iterations > 1
    assert np.all(np.diff(h) <= 1e-9 * h[0])
    assert r.sse <= h[-1] * (1 + 1e-9)
    # the final SSE is that of the nearest codes
    codes = assign(x.astype(np.float32), r.centroids)
    exact = np.sum((x.astype(np.float32).astype(np.float64) - r.centroids[codes]) ** 2)
    assert r.sse == pytest.approx(exact, rel=1e-6)


def test_converges_to_a_fixed_point():
    x = np.random.default_rng(2).standard_normal(5000)
    r = kmeans_1d(x, 8, iterations=10000)
    assert r.converged
    codes = assign(x, r.centroids)
    means = np.array([x[codes == j].mean() for j in range(r.centroids.size)])
    np.testing.assert_allclose(r.centroids, means, rtol=1e-12)


def test_linear_init_spans_min_to_max():
    xs = np.sort(np.random.default_rng(3).standard_normal(1000))
    c = initial_centroids(xs, 16, "linear")
    assert c[0] == xs[0] and c[-1] == xs[-1]
    np.testing.assert_allclose(np.diff(c), (xs[-1] - xs[0]) / 15)


def test_density_init_follows_quantiles():
    x = np.random.default_rng(4).standard_t(2, 1001)
    for k in (1, 5, 32):
        c = initial_centroids(np.sort(x), k, "density")
        np.testing.assert_allclose(c, np.quantile(x, (np.arange(k) + 0.5) / k), rtol=1e-12)


def test_forgy_is_seeded_distinct_and_from_the_data():
    xs = np.sort(np.round(np.random.default_rng(5).standard_normal(500), 1))
    a = initial_centroids(xs, 10, "random", seed=7)
    assert np.array_equal(a, initial_centroids(xs, 10, "random", seed=7))
    assert not np.array_equal(a, initial_centroids(xs, 10, "random", seed=8))
    assert np.unique(a).size == 10 and np.isin(a, xs).all() and np.all(np.diff(a) > 0)


def test_inits_differ_on_heavy_tails():
    # linear keeps centroids out in the tails; density piles them up in the middle
    xs = np.sort(np.random.default_rng(6).standard_t(1.5, 10000))
    lin, den = initial_centroids(xs, 8, "linear"), initial_centroids(xs, 8, "density")
    assert np.ptp(lin) > 10 * np.ptp(den)


def test_deterministic_with_empty_clusters():
    x = np.random.default_rng(7).standard_t(1.2, 5000)  # linear init leaves most clusters empty
    runs = [kmeans_1d(x, 64, init="linear", iterations=50) for _ in range(2)]
    assert np.array_equal(runs[0].centroids, runs[1].centroids)
    c = runs[0].centroids
    assert np.all(np.diff(c) > 0) and c.size <= 64
    assert np.unique(assign(x, c)).size == c.size  # every centroid is someone's nearest


def test_few_distinct_values_are_exact():
    r = kmeans_1d([2.0, -1.0, 2.0, 0.5] * 10, 4)
    assert r.centroids.tolist() == [-1.0, 0.5, 2.0] and r.sse == 0.0
    assert kmeans_1d(np.zeros(10), 1).centroids.tolist() == [0.0]
    assert kmeans_1d([], 3).centroids.size == 0


finite = hnp.arrays(np.float64, st.integers(1, 60),
                    elements=st.floats(allow_nan=False, allow_infinity=False))


@settings(deadline=None)
@given(finite, st.integers(1, 8), st.sampled_from(["linear", "density", "random"]))
def test_arbitrary_floats(x, k, init):
    r = kmeans_1d(x, k, init=init, iterations=20)
    c = r.centroids
    assert 1 <= c.size <= k and np.isfinite(c).all() and np.all(c[1:] > c[:-1])
    assert c[0] >= x.min() and c[-1] <= x.max()


def test_assign_nearest_ties_lower():
    cb = np.array([-1.0, 0.0, 2.0])
    x = np.array([-5, -1, -0.5, -0.4, 0, 1, 1.1, 2, 7])
    assert assign(x, cb).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert assign(x.astype(np.float32), cb).dtype == np.uint16


@given(hnp.arrays(np.float32, st.integers(0, 200), elements=st.floats(-10, 10, width=32)),
       hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-10, 10), unique=True))
def test_assign_matches_argmin(x, cb):
    cb = np.sort(cb)
    codes = assign(x, cb)
    d = np.abs(x.astype(np.float64)[:, None] - cb[None, :])
    assert np.all(d[np.arange(x.size), codes] <= d.min(axis=1))


def test_assign_large_codebook_and_extremes():
    cb = np.unique(np.random.default_rng(8).standard_normal(65536))
    x = np.random.default_rng(9).standard_normal(20000) * 3
    # nearest among the two entries around each value
    i = np.clip(np.searchsorted(cb, x), 1, cb.size - 1)
    nearest = np.where(np.abs(x - cb[i - 1]) <= np.abs(x - cb[i]), i - 1, i)
    assert np.array_equal(assign(x, cb), nearest)
    big = np.array([-1e308, 0.0, 1e308])
    assert assign(np.array([-1.7e308, -1e300, 1e300, 1.7e308]), big).tolist() == [0, 1, 1, 2]


@pytest.mark.parametrize("call", [
    lambda: kmeans_1d([1.0, np.nan], 2), lambda: kmeans_1d([1.0, np.inf], 2),
    lambda: kmeans_1d([1.0], 0), lambda: kmeans_1d([1.0], 65537), lambda: kmeans_1d([1.0], 2, init="x"),
    lambda: kmeans_1d([1.0], 2, iterations=-1), lambda: assign([1.0], np.array([2.0, 1.0])),
    lambda: assign([1.0], np.zeros(0)),
])
def test_refusals(call):
    with pytest.raises(InvalidSettings):
        call()


# --- the radix sort under k-means --------------------------------------------------------


def _radix_sorted(x: np.ndarray) -> np.ndarray:
    from dcformat.kernels.sort import sort_float32

    out = np.empty(x.size, np.uint32)
    sort_float32(np.ascontiguousarray(x, np.float32).view(np.uint32), out, np.empty_like(out))
    return out.view(np.float32)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 3000), elements=st.floats(width=32, allow_nan=False,
                                                                          allow_infinity=False)))
def test_radix_sort_is_numpys_sort(x):
    got = _radix_sorted(x)
    assert np.array_equal(got, np.sort(x))
    assert sorted(got.view(np.uint32).tolist()) == sorted(x.view(np.uint32).tolist())  # same bits, -0.0 kept
    negative_zero = np.signbit(got[got == 0])
    assert (np.diff(negative_zero.astype(np.int8)) <= 0).all()  # every -0.0 before every +0.0


@pytest.mark.parametrize("case", ["one exponent", "constant", "descending", "big"])
def test_radix_sort_cases(case):
    rng = np.random.default_rng(0)
    x = {"one exponent": np.float32(1.5) + rng.integers(0, 99, 5000).astype(np.float32) * np.float32(2 ** -20),
         "constant": np.full(100, -2.5, np.float32),
         "descending": -np.arange(70_000, dtype=np.float32),
         "big": rng.standard_normal(1 << 20).astype(np.float32)}[case]
    assert np.array_equal(_radix_sorted(x), np.sort(x))


# --- 16-bit floats through their bit patterns ----------------------------------------------

import ml_dtypes  # noqa: E402

from dcformat.compress.kmeans import Patterns  # noqa: E402

NARROW = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(ml_dtypes.float8_e4m3fn)]


def _narrow(draw_bits, dtype):
    """Every finite value of ``dtype`` reachable: arbitrary bit patterns, the non-finite ones dropped."""
    x = np.asarray(draw_bits, np.uint16 if dtype.itemsize == 2 else np.uint8).view(dtype)
    return x[np.isfinite(x.astype(np.float32))]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(NARROW), hnp.arrays(np.uint16, st.integers(1, 2000)), st.integers(1, 40),
       st.sampled_from(["linear", "density", "random"]), st.sampled_from([1, 2]))
def test_patterns_give_what_the_widened_values_give(dtype, bits, k, init, skew):
    bits = bits if dtype.itemsize == 2 else (bits & 0xFF).astype(np.uint8)
    x = _narrow(bits, dtype)
    x = x[: x.size // skew] if x.size > 1 else x  # some runs with many repeats of few patterns
    if x.size == 0:
        return
    wide = x.astype(np.float32)
    p = Patterns.of(x)
    assert p is not None and p.finite()
    assert np.array_equal(p.sorted().view(np.uint32), _radix_sorted(wide).view(np.uint32))  # bits: zeros' signs
    a, b = kmeans_1d(x, k, init=init, iterations=30), kmeans_1d(wide, k, init=init, iterations=30)
    assert np.array_equal(a.centroids, b.centroids) and a.sse == b.sse and a.iterations == b.iterations
    cb = a.centroids
    assert np.array_equal(assign(x, cb), assign(wide, cb))
    err = wide.astype(np.float64) - cb[assign(wide, cb)]
    assert p.squared_error(cb) == pytest.approx(float(err @ err), rel=1e-12, abs=1e-300)
    assert p.energy() == pytest.approx(float(wide.astype(np.float64) @ wide), rel=1e-12)


def test_patterns_refuse_non_finite_and_other_dtypes():
    x = np.array([1.0, np.inf, 2.0], np.float16)
    assert not Patterns.of(x).finite()
    with pytest.raises(InvalidSettings, match="finite"):
        kmeans_1d(x, 2)
    with pytest.raises(InvalidSettings, match="finite"):
        assign(np.array([np.nan], ml_dtypes.bfloat16), np.array([0.0]))
    for other in (np.zeros(3, np.float32), np.zeros(3, np.int16), np.zeros(3, ">f2")):
        assert Patterns.of(other) is None
    assert np.array_equal(kmeans_1d(np.array([3, 1, 3], ">f2"), 4).centroids, [1.0, 3.0])  # widened instead
