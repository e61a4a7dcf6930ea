"""What benchmarks share: the command and commit their result files start with, and the
page-cache drop that their cold timings start from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def command_and_commit(script: str, watched: list[Path], what: str = "the script") -> str:
    """``command: ...`` and ``commit: ...`` lines; the commit is marked when ``watched``
    (the script and its data) differ from it, naming them as ``what``."""
    here = Path(script).resolve()

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=here.parent, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # no git, or not a checkout
            return ""

    cmd = "python benchmarks/" + here.name + "".join(f" {a}" for a in sys.argv[1:])
    dirty = git("status", "--porcelain", "--", *(str(p) for p in watched))
    return (f"command: {cmd}\ncommit: {git('rev-parse', 'HEAD') or 'unknown'}"
            + (f" (with uncommitted changes to {what})" if dirty else "") + "\n")


def drop_from_page_cache(path) -> None:
    """Write back the file at ``path`` and drop it from the page cache (pages no process maps)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
