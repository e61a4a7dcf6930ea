"""Every Examples section in the package's docstrings runs and prints what it shows."""

import doctest
import importlib
import pkgutil
import sys
import warnings

import pytest

import dcformat

#: Modules kept only as deprecated aliases of a moved module (their docstring says so).
DEPRECATED = {
    "dcformat.container.constants": "dcformat.format.constants",
    "dcformat.container.records": "dcformat.format.records",
    "dcformat.dtypes": "dcformat.format.dtypes",
    **{f"dcformat.torch.{m}": f"dcformat.training.{m}" for m in ("prune", "quantize", "gwconv", "export",
                                                                  "sensitivity")},
    "dcformat.torch.dsd": "dcformat.training.dense_sparse_dense",
    "dcformat.torch.training": "dcformat.training",
}
MODULES = sorted(m.name for m in pkgutil.walk_packages(dcformat.__path__, "dcformat.")
                 if not m.name.endswith("__main__") and m.name not in DEPRECATED)
#: Third-party packages some modules need through an optional extra.
OPTIONAL = {"torch"}


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        # only a missing optional extra skips; a broken import of our own fails
        if (exc.name or "").split(".")[0] not in OPTIONAL:
            raise
        pytest.skip(f"{name} needs an optional dependency: {exc}")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = _import(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_deprecated_alias_warns_and_is_the_new_module(old):
    new = _import(DEPRECATED[old])
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is new
    assert any(issubclass(w.category, DeprecationWarning) and DEPRECATED[old] in str(w.message) for w in caught)
