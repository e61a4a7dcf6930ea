"""The writer's length-limited Huffman construction: the kernel's package-merge gives the
lengths the plain construction gives, for every frequency table (the bytes writers produce,
and so the conformance vectors, depend on it)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcformat.streams.canonical import code_lengths, kraft_sum
from dcformat.format.constants import MAX_CODE_LENGTH


def reference_code_lengths(freqs: np.ndarray, max_length: int) -> np.ndarray:
    """The package-merge construction written with numpy sorts, level by level (as
    dcformat wrote it before its levels were merged in a kernel)."""
    freqs = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(freqs.shape[0], dtype=np.uint8)
    used = np.flatnonzero(freqs)
    n = used.shape[0]
    if n == 0:
        return lengths
    if n == 1:
        lengths[used] = 1
        return lengths
    if n > (1 << max_length):
        raise ValueError(f"{n} symbols cannot have codes of at most {max_length} bits")
    # Leaves in ascending weight; equal weights in ascending symbol order.
    order = used[np.argsort(freqs[used], kind="stable")]
    leaves = freqs[order]
    # Package-merge (coin collector). Level max_length holds the leaves alone; each
    # level above merges the leaves with the pairwise packages of the level below.
    # Leaves come before packages of the same weight, so the merge is deterministic.
    is_leaf_levels = []
    current = leaves
    current_is_leaf = np.ones(n, dtype=bool)
    for _ in range(max_length - 1):
        is_leaf_levels.append(current_is_leaf)
        pairs = current.shape[0] // 2
        packages = current[0:2 * pairs:2] + current[1:2 * pairs:2]
        merged = np.concatenate([leaves, packages])
        pick = np.argsort(merged, kind="stable")
        current = merged[pick]
        current_is_leaf = pick < n
    is_leaf_levels.append(current_is_leaf)
    # Select the 2n - 2 cheapest items of the top level; each package selected at a
    # level selects its two items at the level below. The leaves chosen at a level
    # are always the lightest ones, so a leaf's length is the number of levels whose
    # selected prefix holds it.
    depth = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for level_is_leaf in reversed(is_leaf_levels):
        prefix = level_is_leaf[:take]
        leaves_taken = int(np.count_nonzero(prefix))
        depth[:leaves_taken] += 1
        take = 2 * (take - leaves_taken)
    lengths[order] = depth
    return lengths




@st.composite
def tables(draw):
    size = draw(st.integers(2, 700))
    style = draw(st.sampled_from(["small", "wide", "ties", "skewed"]))
    if style == "small":
        freqs = draw(st.lists(st.integers(0, 4), min_size=size, max_size=size))
    elif style == "wide":
        freqs = draw(st.lists(st.integers(0, 1 << 40), min_size=size, max_size=size))
    elif style == "ties":
        freqs = [draw(st.integers(1, 3))] * size
    else:
        freqs = [int(1.5 ** draw(st.integers(0, 60))) for _ in range(size)]
    freqs = np.array(freqs, np.int64)
    used = int(np.count_nonzero(freqs))
    least = max(1, int(np.ceil(np.log2(max(used, 2)))))
    return freqs, draw(st.integers(least, MAX_CODE_LENGTH))


@settings(max_examples=400, deadline=None)
@given(tables())
def test_the_kernel_gives_the_plain_constructions_lengths(case):
    freqs, limit = case
    lengths = code_lengths(freqs, limit)
    assert lengths.tolist() == reference_code_lengths(freqs, limit).tolist()
    coded = lengths[freqs > 0]
    if coded.size:
        assert coded.min() >= 1 and coded.max() <= limit
        assert kraft_sum(lengths) <= 1 << MAX_CODE_LENGTH
    assert not lengths[freqs == 0].any()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 600), st.integers(0, 5000), st.integers(0, 2**32 - 1))
def test_the_histogram_counts_every_symbol(alphabet, count, seed):
    from dcformat.kernels.huffman import histogram

    rng = np.random.default_rng(seed)
    symbols = np.minimum(rng.geometric(0.3, count) - 1, alphabet - 1).astype(np.uint16)  # skewed, repeats
    out = np.ones(alphabet, np.int64)  # it adds to what is there
    histogram(symbols, out)
    assert out.tolist() == (np.bincount(symbols, minlength=alphabet) + 1).tolist()
