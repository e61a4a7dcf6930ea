#!/usr/bin/env python3
"""Write the dcformat conformance vectors (spec/FORMAT.md, Appendix C).

    python spec/vectors/make_vectors.py           # write the vectors; never replace a file that differs
    python spec/vectors/make_vectors.py --force   # replace vectors whose bytes differ, drop stale ones
    python spec/vectors/make_vectors.py --check   # regenerate in memory, compare with the files; exit 1 on any difference

The vectors themselves are in ``families/``, one module per rule family (its
``__init__`` lists them and the shared helpers); this script imports them, builds every
file in memory and compares or writes.

**Valid** vectors (``valid/NAME.dcf``) are written by the real writer
(:class:`dcformat.container.writer.ContainerWriter`) from inputs fixed in the families,
except where a vector needs something the writer never produces (a higher minor version,
Extension bytes, hand-made Huffman chunks); then the writer's file is edited with the
small file model of ``families/model.py``. Their expected tensors
(``valid/NAME.expected.safetensors``) are computed with plain numpy from the same
inputs, never by decoding the file.

**Invalid** vectors (``invalid/NAME.dcf``) each start from a valid file and change one
thing: a field patched at the offset the parser locates, or a structure rebuilt with the
file model. Every checksum the change affects is then recomputed, so the file breaks the
rule it names and only that one; only the checksum vectors keep a wrong checksum.

``MANIFEST.json`` lists every vector: its file, kind, description and, for invalid
ones, the error class (``dcformat/errors.py``) and rule (FORMAT.md, Appendix B).

Nothing is random: inputs come from a fixed splitmix64 generator (not numpy's, whose
streams may change between releases), so two runs write identical bytes. The valid
files also depend on the writer's choices (Huffman code lengths, raw-chunk fallback);
``--check`` fails if those change. Changing the bytes of a committed vector is a format
change (Appendix C): do it with ``--force`` only on purpose.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import dcformat  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(HERE.parent.parent))
if str(HERE) not in sys.path:  # the families package sits beside this script
    sys.path.insert(0, str(HERE))

from dcformat import errors  # noqa: E402
from families import FAMILIES  # noqa: E402
from families.common import safetensors_bytes  # noqa: E402
from families.manifest_order import LISTED  # noqa: E402
from families.registry import VECTORS, Vector  # noqa: E402

for _family in FAMILIES:
    importlib.import_module(f"families.{_family}")

RULES = [f"R{i}" for i in range(1, 46)]


def manifest_order(vectors: list[Vector]) -> list[Vector]:
    """The vectors in MANIFEST.json's order: the 1.0 ones as listed, then the rest as registered."""
    by_name = {v.name: v for v in vectors}
    assert len(by_name) == len(vectors), "two vectors share a name"
    missing = [name for name in LISTED if name not in by_name]
    assert not missing, f"listed in manifest_order.py but not registered: {missing}"
    listed = set(LISTED)
    return [by_name[name] for name in LISTED] + [v for v in vectors if v.name not in listed]


def generate() -> dict[str, bytes]:
    """Every file this script writes, by path relative to spec/vectors/, built in memory."""
    files: dict[str, bytes] = {}
    entries = []
    for vector in manifest_order(VECTORS):
        path = f"{vector.kind}/{vector.name}.dcf"
        entry = {"name": vector.name, "kind": vector.kind, "file": path}
        if vector.kind == "valid":
            data, expected, metadata = vector.make()
            files[path] = data
            entry["expected"] = f"valid/{vector.name}.expected.safetensors"
            files[entry["expected"]] = safetensors_bytes(expected, metadata)
            entry["tensors"] = list(expected)
        else:
            assert vector.rule in RULES, vector.rule
            assert isinstance(getattr(errors, vector.error, None), type), vector.error
            files[path] = data = vector.make()
            entry.update(error=vector.error, rule=vector.rule)
        entry["description"] = vector.description
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entries.append(entry)
    covered = {e["rule"] for e in entries if e["kind"] == "invalid"}
    assert covered == set(RULES), f"rules without a vector: {sorted(set(RULES) - covered)}"
    manifest = {
        "spec": "spec/FORMAT.md, version 1.3, Appendix C",
        "generator": "spec/vectors/make_vectors.py",
        "notes": ("valid/NAME.dcf decodes to the tensors of valid/NAME.expected.safetensors, in the "
                  "order of 'tensors', with the safetensors __metadata__ as its metadata; "
                  "invalid/NAME.dcf must be refused with 'error' (a class of dcformat/errors.py) for "
                  "rule 'rule' of Appendix B, with the reader's default decode budget."),
        "vectors": entries,
    }
    files["MANIFEST.json"] = (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    return files


def _on_disk(root: Path) -> set[str]:
    found = set()
    for pattern in ("valid/*.dcf", "valid/*.safetensors", "invalid/*.dcf", "MANIFEST.json"):
        found |= {p.relative_to(root).as_posix() for p in root.glob(pattern)}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and compare with the files; write nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace files whose bytes differ and delete vectors no longer generated")
    parser.add_argument("--out", type=Path, default=HERE, help="the vectors folder (default: this script's)")
    args = parser.parse_args(argv)
    root: Path = args.out
    files = generate()
    stale = sorted(_on_disk(root) - files.keys())
    missing = sorted(k for k in files if not (root / k).exists())
    differ = sorted(k for k in files if (root / k).exists() and (root / k).read_bytes() != files[k])
    if args.check:
        for label, paths in (("missing", missing), ("differs", differ), ("not generated", stale)):
            for path in paths:
                print(f"{label}: {path}", file=sys.stderr)
        ok = not (missing or differ or stale)
        print(f"{len(files)} files {'match' if ok else 'do NOT match'} the generator", file=sys.stderr)
        return 0 if ok else 1
    for sub in ("valid", "invalid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write = missing + (differ if args.force else [])
    for path in write:
        (root / path).write_bytes(files[path])
    if args.force:
        for path in stale:
            (root / path).unlink()
    print(f"wrote {len(write)} of {len(files)} files", file=sys.stderr)
    if (differ or stale) and not args.force:
        for path in differ:
            print(f"kept (differs from the generator; --force replaces it): {path}", file=sys.stderr)
        for path in stale:
            print(f"kept (no longer generated; --force deletes it): {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
