"""The README's Python examples run as written (safetensors ``ReadmeTestCase``)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code):
    exec(compile(code, str(README), "exec"), {})


def test_readme_opens_with_the_two_commands():
    shell = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert "dcformat compress examples/lenet300/lenet-300-100.safetensors" in shell[0]
    assert "python -m pytest -q" in shell[1]
    assert "python -m pytest -q" in (README.parent / ".ci" / "run").read_text()
