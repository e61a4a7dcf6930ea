"""The format's vocabulary: wire numbers and limits, record types, dtypes.

The bottom layer of dcformat: every other layer (kernels, streams, encodings, the
container, the reference decoder, the API) imports from here, and this package imports
nothing of dcformat's but :mod:`dcformat.errors`.
"""
