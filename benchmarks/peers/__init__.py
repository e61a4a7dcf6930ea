"""Peer codecs run side by side with dcformat in the benchmarks (``from peers import nncodec``)."""
