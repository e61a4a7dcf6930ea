"""Conditions of the machine or the input: one line on stderr, an exit code of their own, no traceback.

0 ok, 1 invalid input file, 2 usage, 3 an input missing or unreadable, 4 the output could not be
written (disk full, read-only file system, permission, a missing directory), 130 interrupted.
Disk full and read-only targets are real small tmpfs mounts where this process may mount
(root, as CI runs), and skipped elsewhere; the monkeypatched cases beside them always run.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dcformat.cli import main
from examples.lenet300 import WEIGHTS_PATH

EXIT_INVALID, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT = 1, 2, 3, 4


@pytest.fixture
def lenet(tmp_path) -> Path:
    return Path(shutil.copyfile(WEIGHTS_PATH, tmp_path / "lenet.safetensors"))


@pytest.fixture(scope="module")
def lenet_dcf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dcf") / "lenet.dcf"
    assert main(["compress", str(WEIGHTS_PATH), "-o", str(path), "--preset", "lossless", "-q"]) == 0
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dcformat: ")
    return lines[0]


def command_line(command: str, src, out) -> list:
    extra = {"compress": ["--preset", "lossless", "-q"], "decompress": []}.get(command)
    return [command, src] + ([] if extra is None else ["-o", out, *extra])


# --- the input -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "verify", "decompress", "compress"])
def test_a_directory_as_input(capsys, tmp_path, command):
    folder = tmp_path / ("model.dcf" if command != "compress" else "model.safetensors")
    folder.mkdir()
    code, out, err = run(capsys, *command_line(command, folder, tmp_path / "out.x"))
    assert code == EXIT_INPUT, err
    line = one_line(err)
    assert str(folder) in line and "directory" in line
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


@pytest.mark.parametrize("command", ["info", "verify", "decompress", "compress"])
def test_a_missing_input(capsys, tmp_path, command):
    missing = tmp_path / ("nothing.dcf" if command != "compress" else "nothing.safetensors")
    code, out, err = run(capsys, *command_line(command, missing, tmp_path / "out.safetensors"))
    assert code == EXIT_INPUT, err
    line = one_line(err)
    assert str(missing) in line and "no such file" in line
    assert out == "" and not list(tmp_path.iterdir())


def test_a_missing_input_is_named_before_an_existing_output(capsys, tmp_path):
    existing = tmp_path / "out.safetensors"
    existing.write_bytes(b"keep")
    code, _, err = run(capsys, "decompress", tmp_path / "nothing.dcf", "-o", existing)
    assert code == EXIT_INPUT and "nothing.dcf" in one_line(err)


@pytest.fixture
def unreadable(monkeypatch):
    """Make open() refuse the paths added to the returned set, as a file mode 000 does for a user."""
    refused: set[str] = set()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    return refused


@pytest.mark.parametrize("command", ["info", "verify", "decompress", "compress"])
def test_permission_denied_on_the_input(capsys, tmp_path, lenet, lenet_dcf, unreadable, command):
    src = lenet if command == "compress" else Path(shutil.copyfile(lenet_dcf, tmp_path / "in.dcf"))
    unreadable.add(os.path.abspath(src))
    out = tmp_path / ("out.dcf" if command == "compress" else "out.safetensors")
    code, stdout, err = run(capsys, *command_line(command, src, out))
    assert code == EXIT_INPUT, err
    line = one_line(err)
    assert str(src) in line and "permission denied" in line
    assert stdout == "" and not out.exists()


def test_a_missing_settings_file_is_an_unreadable_input(capsys, tmp_path, lenet):
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "x.dcf", "--settings", tmp_path / "no.json")
    assert code == EXIT_INPUT and "no.json" in one_line(err)


# --- the output ------------------------------------------------------------------------------


def test_an_output_in_a_missing_directory(capsys, tmp_path, lenet):
    out = tmp_path / "no" / "such" / "x.dcf"
    code, _, err = run(capsys, "compress", lenet, "-o", out, "--preset", "lossless", "-q")
    assert code == EXIT_OUTPUT
    line = one_line(err)
    assert str(out) in line and str(out.parent) in line and ".tmp" not in line


def test_an_output_that_is_a_directory(capsys, tmp_path, lenet_dcf):
    folder = tmp_path / "out.safetensors"
    folder.mkdir()
    for force in ((), ("--force",)):
        code, _, err = run(capsys, "decompress", lenet_dcf, "-o", folder, *force)
        assert code == EXIT_OUTPUT, err
        assert str(folder) in one_line(err) and "directory" in err
    assert not list(folder.iterdir())


WRITE_FAILURES = [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only file system"),
                  (errno.EDQUOT, "quota"), (errno.EACCES, "permission denied")]


@pytest.mark.parametrize("number, words", WRITE_FAILURES, ids=[errno.errorcode[n] for n, _ in WRITE_FAILURES])
@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_write_failures_monkeypatched(capsys, monkeypatch, tmp_path, lenet, lenet_dcf, command, number, words):
    import dcformat.convert as convert

    src = lenet if command == "compress" else lenet_dcf
    out = tmp_path / ("out.dcf" if command == "compress" else "out.pt")

    def fail(*args, **kwargs):  # as the API raises them: with the temporary file's name
        raise OSError(number, os.strerror(number), str(tmp_path / f".{out.name}.abcd1234.tmp"))

    monkeypatch.setattr(convert, "compress_checkpoint" if command == "compress" else "write_checkpoint", fail)
    code, stdout, err = run(capsys, *command_line(command, src, out))
    assert code == EXIT_OUTPUT, err
    line = one_line(err)
    assert str(out) in line and words in line and ".tmp" not in line
    assert "nothing was written" in line and not out.exists()


@pytest.mark.parametrize("number, words", WRITE_FAILURES[:2], ids=["ENOSPC", "EROFS"])
def test_write_failures_without_a_file_name(capsys, monkeypatch, tmp_path, lenet, number, words):
    import dcformat.convert as convert

    def fail(*args, **kwargs):
        raise OSError(number, os.strerror(number))  # what a failed write() raises

    monkeypatch.setattr(convert, "compress_checkpoint", fail)
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "o.dcf", "-q")
    assert code == EXIT_OUTPUT and words in one_line(err) and str(tmp_path / "o.dcf") in err


# --- real file systems: a small tmpfs, full or read-only --------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, read_only=False) -> a folder on a fresh tmpfs of ``size`` bytes; unmounted after."""
    mounted = []

    def mount(size: int, read_only: bool = False) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        mounted.append(folder)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=False)


OUTPUTS = [("compress", "out.dcf"), ("decompress", "out.safetensors"), ("decompress", "out.pt")]


@pytest.mark.parametrize("command, name", OUTPUTS, ids=[n for _, n in OUTPUTS])
def test_disk_full(capsys, tmpfs, lenet, lenet_dcf, command, name):
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    fs = tmpfs(256 * 1024)  # a quarter of LeNet's 1 MB
    src = lenet if command == "compress" else lenet_dcf
    code, out, err = run(capsys, *command_line(command, src, fs / name))
    assert code == EXIT_OUTPUT, err
    line = one_line(err)
    assert str(fs / name) in line and "disk full" in line and "inline_container" not in line
    assert out == "" and not list(fs.iterdir())  # no partial output, no temporary file


@pytest.mark.parametrize("command, name", OUTPUTS, ids=[n for _, n in OUTPUTS])
def test_read_only_file_system(capsys, tmpfs, lenet, lenet_dcf, command, name):
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    fs = tmpfs(1 << 20, read_only=True)
    src = lenet if command == "compress" else lenet_dcf
    code, out, err = run(capsys, *command_line(command, src, fs / name))
    assert code == EXIT_OUTPUT, err
    line = one_line(err)
    assert str(fs / name) in line and "read-only file system" in line
    assert out == "" and not list(fs.iterdir())


@pytest.mark.parametrize("command, name", OUTPUTS, ids=[n for _, n in OUTPUTS])
def test_file_size_limit_in_a_real_process(tmp_path, lenet_dcf, command, name):
    """RLIMIT_FSIZE makes every write past 200 kB fail with EFBIG: a real fault on any Linux."""
    if name.endswith(".pt"):
        pytest.importorskip("torch")
    resource = pytest.importorskip("resource")
    src = WEIGHTS_PATH if command == "compress" else lenet_dcf
    out = tmp_path / name

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    script = "import sys; from dcformat.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", script, *map(str, command_line(command, src, out))],
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert done.returncode == EXIT_OUTPUT, done.stderr
    line = one_line(done.stderr)
    assert str(out) in line and "too large" in line
    assert not list(tmp_path.iterdir())


# --- real permissions, in a process that may not override them --------------------------------


def _without_override() -> list[str]:
    """A command prefix under which file permissions hold (root drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to hold")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _cli(prefix, *argv, **kwargs):
    script = "import sys; from dcformat.cli import main; sys.exit(main())"
    return subprocess.run([*prefix, sys.executable, "-c", script, *map(str, argv)],
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("command", ["info", "compress"])
def test_permission_denied_for_real(tmp_path, lenet, lenet_dcf, command):
    prefix = _without_override()
    src = lenet if command == "compress" else Path(shutil.copyfile(lenet_dcf, tmp_path / "in.dcf"))
    src.chmod(0)
    done = _cli(prefix, *command_line(command, src, tmp_path / "out.dcf"))
    assert done.returncode == EXIT_INPUT, done.stderr
    assert str(src) in one_line(done.stderr) and "permission denied" in done.stderr
    src.chmod(0o644)

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    done = _cli(prefix, "compress", lenet, "-o", locked / "out.dcf", "--preset", "lossless", "-q")
    assert done.returncode == EXIT_OUTPUT, done.stderr
    assert str(locked / "out.dcf") in one_line(done.stderr) and "permission denied" in done.stderr
    assert not list(locked.iterdir())


@pytest.mark.parametrize("argv", [["--help"], ["compress", "--help"], ["info", "--help"]])
def test_help_lists_the_exit_codes(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code, words in ((1, "invalid"), (2, "usage"), (3, "cannot be read"), (4, "could not be written"),
                        (130, "interrupted")):
        assert any(line.split()[:1] == [str(code)] and words in line for line in out.splitlines()), (code, out)


def test_interrupted(capsys, monkeypatch, tmp_path, lenet):
    import dcformat.convert as convert

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "compress_checkpoint", interrupt)
    code, _, err = run(capsys, "compress", lenet, "-o", tmp_path / "o.dcf", "-q")
    assert code == 130 and "interrupted" in one_line(err) and not (tmp_path / "o.dcf").exists()
