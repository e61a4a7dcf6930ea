"""The conformance vectors, one module per rule family (spec/FORMAT.md, Appendix B).

``spec/vectors/make_vectors.py`` imports the modules of :data:`FAMILIES` in order; each
registers its vectors (:mod:`.registry`) as it is imported, valid and invalid alike. The
others hold what the families share, each once:

- :mod:`.common`: the fixed random inputs, the real writer, the expected tensors;
- :mod:`.model`: a file model to parse, edit and re-write a file;
- :mod:`.huff`: Huffman stream payloads, parsed, edited or written by hand;
- :mod:`.edits`: vector makers (patch a field, edit the model, cut the file);
- :mod:`.bases` and :mod:`.handcrafted`: the valid files the invalid vectors start from;
- :mod:`.manifest_order`: the order of MANIFEST.json's entries.
"""

#: The rule families, in the order their modules are imported.
FAMILIES = (
    "preamble",        # R1-R6; minor versions, optional features
    "checksums",       # R7, R21
    "header",          # R8, R11, R12, R16; names, metadata, tensor order
    "records",         # R13, R14, R15, R20
    "limits",          # R10; values at their limits
    "layout",          # R9, R17, R18, R19; alignment
    "values",          # R32; every dtype, NaN payloads, BOOL, zero sizes
    "packed",          # R22
    "codebook",        # R30 (codes); codebooks and code widths
    "huffman",         # R23-R26; Huffman streams the writer makes, and by hand
    "huffman_chunks",  # R27-R29
    "sparse",          # R31; gaps and fillers
    "banks",           # R30 (selectors); banks
    "budget",          # R33
    "order",           # Appendix B, "Order of checks"
    "grouped",         # R34-R39 (v1.1); GROUPED values, their rounding and their order of checks
    "planes",          # R40-R43 (v1.2); PLANES values: every float's bits, blocks, per-plane codecs, order
    "affine",          # R44-R45 (v1.3); AFFINE codebooks: entries, their rounding, where they may be, order
)
