"""Converting a model directory's shards on a Ray cluster (``compress_directory(ray=...)``,
``dcformat compress MODEL_DIR --ray ADDRESS``).

The cluster is real: ``ray start --head`` on 127.0.0.1 with two CPUs, so two worker processes
take the shards, started once for this module and stopped after it. Every conversion on it must
write the bytes one process writes; a task whose worker process dies is run again by Ray and
leaves the same directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
cloudpickle = pytest.importorskip("ray.cloudpickle")

from dcformat.compress import CompressionSettings  # noqa: E402
from dcformat.convert import compress_directory, directory, verify_directory  # noqa: E402
from dcformat.convert.parallel import Runner  # noqa: E402
from dcformat.errors import ConversionError, InvalidHeader, UsageError  # noqa: E402

from .test_cli_faults import one_line, run  # noqa: E402
from .test_directory import EXIT_USAGE, bf16_dir, leftovers, minilm_dir, tree  # noqa: E402,F401 - fixtures

pytestmark = pytest.mark.timeout(600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray head on 127.0.0.1 with 2 CPUs (two worker processes)."""
    ray_cli = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    port = free_port()
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
                    "--object-store-memory=100000000"], check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture
def by_value():
    """Ray's workers cannot import this test module: the tasks it defines travel by value."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_minilm_on_ray_is_byte_for_byte_one_process(cluster, minilm_dir, tmp_path):
    for settings in (CompressionSettings(), CompressionSettings.preset("rd")):  # a budget plans on Ray too
        local = compress_directory(minilm_dir, tmp_path / "local", settings, workers=1)
        remote = compress_directory(minilm_dir, tmp_path / "ray", settings, ray=cluster)
        assert len(remote.shards) == 3
        assert tree(tmp_path / "ray") == tree(tmp_path / "local")
        assert [s.file_bytes for s in remote.shards] == [s.file_bytes for s in local.shards]
        for name in ("local", "ray"):
            (tmp_path / name).rename(tmp_path / f"{name}-{settings.bits_per_param}")


def dies_first_time(marks: Path):
    """``_compress_shard`` as a task whose worker process dies on its first run of the first shard,
    having left a half-written shard both in its private directory and under the shard's name;
    every run records its process id."""
    real = directory._compress_shard

    def task(job):
        (marks / f"{job.output.name}.{os.getpid()}").touch()
        first = job.output.name.startswith("model-00001-of-") and not (marks / "died").exists()
        if first:
            (marks / "died").touch()
            half = Path(tempfile.mkdtemp(prefix=directory.UNFINISHED, dir=job.output.parent))
            (half / job.output.name).write_bytes(b"DCF half a shard")
            job.output.write_bytes(b"DCF half a shard")
            os._exit(1)
        return real(job)

    return task


def test_a_worker_that_dies_is_retried_and_the_output_is_unchanged(cluster, by_value, bf16_dir, tmp_path, monkeypatch):
    compress_directory(bf16_dir, tmp_path / "local", workers=1)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(directory, "_compress_shard", dies_first_time(marks))
    report = compress_directory(bf16_dir, tmp_path / "ray", ray=cluster)
    assert (marks / "died").exists()
    runs = [p.name for p in marks.iterdir() if p.name != "died"]
    first = [r for r in runs if r.startswith("model-00001-of-")]
    assert len(first) == 2 and first[0].rsplit(".", 1)[1] != first[1].rsplit(".", 1)[1]  # in a new process
    assert len(runs) == len(report.shards) + 1 == 5  # the other three shards ran once
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")  # nothing the dead task left remains
    assert verify_directory(tmp_path / "ray") == verify_directory(tmp_path / "local")
    assert leftovers(tmp_path) == []


def crashing(job):
    os._exit(3)


def failing(job):
    with open(job, "a") as f:
        f.write("ran\n")
    raise InvalidHeader(f"shard {Path(job).name}", "not a shard")


def test_a_conversion_error_comes_back_with_its_class_and_is_not_retried(cluster, by_value, tmp_path):
    jobs = [str(tmp_path / "x"), str(tmp_path / "y")]
    with Runner(ray=cluster) as runner, pytest.raises(InvalidHeader, match="shard [xy]: not a shard") as caught:
        runner.map(failing, jobs)
    assert caught.value.field in ("shard x", "shard y")  # rebuilt with its class and attributes (it does not pickle)
    assert all(Path(job).read_text() == "ran\n" for job in jobs if Path(job).exists())  # each ran once


def test_a_task_that_always_dies_is_a_conversion_error(cluster, by_value):
    with Runner(ray=cluster) as runner, pytest.raises(ConversionError, match="after 3 retries"):
        runner.map(crashing, ["x"])


def test_cli_ray_writes_what_one_process_writes(cluster, bf16_dir, tmp_path, capsys):
    assert run(capsys, "compress", bf16_dir, "-o", tmp_path / "local", "-q", "--workers", "1")[0] == 0
    code, _, err = run(capsys, "compress", bf16_dir, "-o", tmp_path / "ray", "--ray", cluster)
    assert code == 0, err
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert "4/4" in err  # the bar counts shards


def test_cli_ray_errors_are_one_line(capsys, bf16_dir, tmp_path):
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = run(capsys, "compress", bf16_dir, "-o", tmp_path / "out", "--ray", closed)
    assert code == EXIT_USAGE and "cannot reach a Ray cluster" in one_line(err)
    code, _, err = run(capsys, "compress", bf16_dir, "-o", tmp_path / "out", "--ray", "127.0.0.1:1", "--workers", "2")
    assert code == EXIT_USAGE and "give one" in one_line(err)
    single = next(bf16_dir.glob("*.safetensors"))
    code, _, err = run(capsys, "compress", single, "-o", tmp_path / "one.dcf", "--ray", "auto")
    assert code == EXIT_USAGE and "drop --ray" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bf16_dir.name]


def test_api_refuses_workers_with_ray(bf16_dir, tmp_path):
    with pytest.raises(UsageError, match="give one"):
        compress_directory(bf16_dir, tmp_path / "out", workers=2, ray="auto")
    with pytest.raises(UsageError, match="address"):
        compress_directory(bf16_dir, tmp_path / "out", ray="")
