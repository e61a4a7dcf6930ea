"""The order of MANIFEST.json's entries.

Version 1.0's vectors were made by one script, and the manifest lists them in the order
that script registered them: the valid ones first, then the invalid ones rule by rule,
then a few added to rules already covered, then the ``order-*`` vectors. Splitting the
script into rule families must not move an entry, so that order is written down here.
A vector not listed (one added since) comes after these, in registration order (the
modules in ``families.FAMILIES`` order, each in its own order): nobody edits this list.
"""

from __future__ import annotations

#: Every vector of the 1.0 manifest, in its order.
LISTED: tuple[str, ...] = tuple("""
raw-every-dtype raw-zero-size-and-scalar bf16-nan-payloads codebook-packed codebook-huffman
huffman-chunks-in-fours codebook-12bit codebook-single-entry
huffman-multi-chunk-with-raw-fallback huffman-single-symbol huffman-code-length-15
huffman-handcrafted sparse-raw-values sparse-codebook-max-gap-filler sparse-gap-bits-1
sparse-gap-bits-16 sparse-gap-bits-16-max-gap sparse-empty bank-dense bank-sparse
bank-codebook-quantized metadata-unicode many-tensors minor-version-extension minor-version-max
optional-feature-bit alignment-8 alignment-4096 bank-and-tensor-same-name no-tensors bank-only
zero-size-encoded zero-size-huge-dims limits-at-maximum bool-encodings sparse-gaps-multi-chunk
bad-magic-high-bit-stripped bad-magic-byte-reversed bad-magic-crlf-to-lf bad-magic-lf-to-crlf
empty-file shorter-than-magic truncated-after-magic truncated-in-preamble version-major-2
version-major-0 version-major-byte-swapped required-feature-bit-3 required-feature-bit-31
header-size-over-limit header-size-u64-max header-size-at-limit-truncated
header-size-past-file-end truncated-in-header header-checksum-wrong
header-checksum-covers-preamble header-checksum-covers-header header-size-zero
header-size-cuts-last-record name-length-past-header tensor-count-past-header alignment-0
alignment-4 alignment-96 alignment-8192 alignment-2147483648 rank-9 tensor-name-4097-bytes
bank-name-4097-bytes metadata-key-4097-bytes metadata-value-length-over-limit
metadata-count-over-limit bank-count-over-limit tensor-count-over-limit elements-over-2-48
elements-product-wraps-u64 codebook-size-65537 bank-size-65537 tensor-name-invalid-utf8
tensor-name-overlong-utf8 tensor-name-utf8-surrogate tensor-name-truncated-utf8
tensor-name-utf8-above-max bank-name-invalid-utf8 metadata-key-invalid-utf8
metadata-value-invalid-utf8 duplicate-tensor-name duplicate-bank-name duplicate-metadata-key
dtype-15 dtype-255 layout-2 value-kind-5 codec-4-on-stream-segment codec-255-on-values-segment
chunk-mode-2 chunk-mode-255 gap-bits-0 gap-bits-17 entry-count-over-units codebook-size-0
bank-index-out-of-range bank-index-u32-max bank-dtype-mismatch tensor-rank-below-kernel-rank
tensor-shape-not-ending-with-kernel bank-rank-0 bank-size-0 bank-kernel-dim-0 bank-valued-bank
bytes-codec-on-stream-segment packed-codec-on-values-segment huffman-codec-on-codebook-segment
extension-zero-byte-minor-0 extension-bytes-minor-0 header-padding-nonzero
header-padding-last-byte-nonzero segment-padding-nonzero
padding-before-empty-last-segment-nonzero first-segment-not-at-zero segment-misaligned
segment-hole segment-overlap segments-out-of-order segment-offset-u64-max
empty-segment-misaligned trailing-byte trailing-bytes-no-segments truncated-at-data-offset
truncated-in-header-padding truncated-in-first-segment truncated-in-segment-padding
truncated-in-last-segment truncated-before-empty-last-segment values-length-plus-one
values-length-minus-one values-length-one-value-short codebook-length-short
sparse-values-length-wrong segment-checksum-payload segment-checksum-field segment-checksum-bank
segment-checksum-unused-bank segment-checksum-zero-size-codebook segment-checksum-empty-segment
segment-checksum-gaps packed-length-plus-one packed-length-minus-one packed-trailing-bits
packed-gaps-trailing-bits packed-empty-stream-one-byte packed-empty-gaps-one-byte
huffman-table-size-over-alphabet huffman-gap-table-size-over-alphabet
huffman-odd-table-high-nibble huffman-kraft-over-one huffman-kraft-over-one-by-2-15
huffman-coded-chunk-without-codes huffman-coded-chunk-zero-lengths huffman-chunk-count-zero
huffman-chunk-count-over-symbols huffman-chunk-count-for-empty-stream
huffman-chunk-count-for-zero-size-tensor huffman-chunk-table-truncated
huffman-first-byte-offset-nonzero huffman-byte-offsets-decreasing huffman-byte-offset-past-end
huffman-byte-offset-u64-max huffman-first-symbol-nonzero huffman-first-symbols-equal
huffman-first-symbol-past-count huffman-raw-chunk-too-long huffman-raw-chunk-too-short
huffman-raw-chunk-trailing-bits huffman-chunk-reads-past-end huffman-invalid-code
huffman-single-symbol-invalid-code huffman-chunk-too-long huffman-chunk-trailing-bits
huffman-last-chunk-trailing-bits huffman-gap-start-position-wrong
huffman-gap-first-start-position-nonzero huffman-gap-raw-chunk-start-position-wrong
huffman-codes-start-position-nonzero code-out-of-range-packed code-out-of-range-packed-max
code-out-of-range-sparse code-out-of-range-bank-codebook code-out-of-range-raw-chunk
selector-out-of-range-packed selector-out-of-range-raw-chunk gap-overrun-by-one
gap-overrun-huffman gap-overrun-fillers gap-overrun-far bool-raw-byte-2 bool-raw-byte-ff
bool-codebook-byte-2 bool-codebook-unused-entry bool-sparse-raw-byte-2 bool-bank-byte-2
bool-codebook-zero-size-tensor decode-budget-huge-sparse decode-budget-2-48-elements
decode-budget-cumulative zero-dim-with-dim-over-2-48 zero-dim-with-dim-u64-max
huffman-empty-stream-trailing-byte huffman-segment-empty huffman-code-lengths-truncated
huffman-chunk-count-truncated decode-budget-unused-bank order-version-before-header-checksum
order-required-feature-before-header-size order-header-checksum-before-fields
order-name-length-limit-before-header-end order-duplicate-key-before-its-value
order-duplicate-name-before-dtype order-dtype-before-rank order-codebook-size-before-entry-count
order-entry-count-before-segment-refs order-header-before-data-section
order-placement-before-file-end order-file-end-before-padding
order-trailing-bytes-before-padding order-padding-before-segment-checksum
order-layout-before-budget order-budget-before-segment-checksum order-banks-before-tensors
order-tensors-in-header-order order-all-checksums-before-contents order-codebook-before-gaps
order-gaps-before-values order-gap-overrun-before-code-range order-table-size-before-nibble
order-nibble-before-kraft order-kraft-before-chunk-count order-chunk-entries-before-chunks
order-chunks-decoded-in-order order-huffman-chunk-before-later-raw-chunk
order-chunks-before-start-position order-chunks-before-symbol-range
order-start-position-before-symbol-range
""".split())
