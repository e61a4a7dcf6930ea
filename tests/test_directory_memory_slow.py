"""A model directory bigger than its memory cap converts and decompresses under it (issue 16).

Slow (a minute or two, 1.5 GB of disk under ``benchmarks/.cache/bigdir/``): ``python -m pytest -m
slow tests/test_directory_memory_slow.py``. A smaller instance of ``benchmarks/directory_memory.py``
(2 shards of 3 astra copies and MiniLM in bf16, 1430 MiB), lossless, one worker, each operation a
fresh process in a memory cgroup capped at the benchmark's bound plus its page-cache room. Needs
the astra and MiniLM wheels the benchmarks fetch, and a writable memory cgroup (v1); skips without.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
_spec = importlib.util.spec_from_file_location("directory_memory", ROOT / "benchmarks" / "directory_memory.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.slow


def _cgroups_work() -> bool:
    try:
        group = bench.Cgroup(f"dcfbench-probe-{os.getpid()}", 64)
    except (OSError, StopIteration):
        return False
    group.close()
    return True


@pytest.fixture(scope="module")
def model():
    if not _cgroups_work():
        pytest.skip("no writable memory cgroup (v1) to cap the processes with")
    cached = bench.CACHE / "astra-x3-minilm-2shards" / "BUILT.json"
    if os.environ.get("DCFORMAT_TEST_OFFLINE") and not cached.is_file():
        pytest.skip(f"{cached.parent} is not built and $DCFORMAT_TEST_OFFLINE is set")
    bench.CACHE.mkdir(parents=True, exist_ok=True)
    return bench.build(2, 3)


def test_lossless_round_trip_under_a_cap_below_the_directory(model, tmp_path):
    import json

    info = json.loads((model / "BUILT.json").read_text())
    w = bench.work_mib(info["largest_values"])
    size = bench.dir_bytes(model) / bench.MIB
    dcf, dense = tmp_path / "dcf", tmp_path / "dense"
    for op, src, dst in (("compress", model, dcf), ("decompress", dcf, dense)):
        bound = bench.fixed_overhead(op, "lossless", 1, tmp_path) + w
        cap = bench.cap_mib(bound)
        assert cap < size / 1.5
        r = bench.operate(bench.command(op, "lossless", "1", src, dst), cap, f"test-{op}")
        assert r["rc"] == 0 and r["code"] == 0, r.get("error")
        assert r["oom_kill"] == 0
        assert r["sum"] <= bound, (op, r["sum"], bound)
    same, count = bench.same_tensors(model, dense)
    assert same and count == info["tensors"]
