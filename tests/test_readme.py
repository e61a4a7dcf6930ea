"""The README's Python examples run as written (safetensors ``ReadmeTestCase``)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
#: An example that imports torch, or the parts of dcformat built on it, needs the optional extra.
NEEDS_TORCH = re.compile(r"^\s*(import|from)\s+(torch|dcformat\.(torch|training))\b", re.M)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code):
    # Skipped only when torch is not installed: an ImportError from an installed torch, or
    # from dcformat itself, fails the test.
    if NEEDS_TORCH.search(code) and importlib.util.find_spec("torch") is None:
        pytest.skip("this example needs PyTorch (pip install torch==2.13.0), which is not installed")
    exec(compile(code, str(README), "exec"), {})


def test_torch_example_skips_exactly_when_torch_is_not_installed(monkeypatch):
    torch_examples = [code for code in EXAMPLES if re.search(r"^import torch$", code, re.M)]
    assert torch_examples, "the README has a PyTorch example"
    monkeypatch.setitem(sys.modules, "torch", None)  # what importlib sees when torch is not installed
    assert importlib.util.find_spec("torch") is None
    with pytest.raises(pytest.skip.Exception, match="torch"):
        test_readme_example_runs(torch_examples[0])
    others = [code for code in EXAMPLES if code not in torch_examples]
    assert others
    for code in others:  # and only those that need it: the rest still run without torch
        test_readme_example_runs(code)


def test_readme_opens_with_the_two_commands():
    shell = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert "dcformat compress examples/lenet300/lenet-300-100.safetensors" in shell[0]
    assert "python -m pytest -q" in shell[1]
    assert "python -m pytest -q" in (README.parent / ".ci" / "run").read_text()
