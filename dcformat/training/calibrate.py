"""Calibration: the model built from its checkpoint, a few hundred inputs, and per-tensor
``rd_weight`` factors measured on them for the bit budget (``dcformat compress --model
--calibration``).

The bits-per-parameter planner gives every tensor the same SQNR unless told which
tensors the output depends on most. :func:`dcformat.training.sensitivity.module_rd_weights`
measures that on the model itself (the output's Gauss-Newton diagonal, probed with random
signs). This module supplies what the command line needs around it: the module, built by
a callable the user names and loaded with the checkpoint's tensors (strictly: every name
must match), and the inputs, an array file of samples (images, token ids) or Gaussian
noise of a given shape when there is no data; the samples are used in batches, at most
``samples`` of them, with a progress bar. Calibration inputs must not be the data a
reported quality is measured on.
"""

from __future__ import annotations

import importlib
import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from ..errors import InvalidSettings, UsageError
from .sensitivity import module_rd_weights

#: Samples used by default, and per batch.
DEFAULT_SAMPLES = 256
BATCH = 16


def load_callable(spec: str) -> Callable:
    """``"package.module:name"`` or ``"path/to/file.py:name"``: the object named there.

    This imports and runs the user's code, as ``--model`` asks for: name only code you trust.
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise UsageError(f"--model {spec!r}: expected MODULE:CALLABLE or FILE.py:CALLABLE")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UsageError(f"--model {spec!r}: no file {where}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise UsageError(f"--model {spec!r}: cannot import {where}: {e}") from None
    target = getattr(module, name, None)
    if not callable(target):
        raise UsageError(f"--model {spec!r}: {where} has no callable {name!r}")
    return target


def build_module(spec: str, tensors: Mapping[str, np.ndarray]) -> torch.nn.Module:
    """The module ``spec``'s callable returns, holding ``tensors`` (``load_state_dict``,
    strict), in eval mode."""
    module = load_callable(spec)()
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"--model {spec!r} returned a {type(module).__name__}, not a torch.nn.Module")
    state = {name: torch.from_numpy(np.array(value, copy=True)) for name, value in tensors.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise UsageError(f"--model {spec!r} does not take this checkpoint's tensors: "
                         f"{' '.join(line.strip() for line in first[:3])}") from None
    return module.eval()


def calibration_batches(source: str, samples: int = DEFAULT_SAMPLES, *, seed: int = 0) -> list[torch.Tensor]:
    """Batches of at most ``samples`` inputs from ``source``: an ``.npy`` file (its first
    axis the samples; floats as float32, integers as int64 token ids) or ``noise:C,H,W``
    (that many Gaussian samples of that shape, seeded)."""
    if not isinstance(samples, int) or samples < 1:
        raise InvalidSettings(f"calibration samples must be a positive int, got {samples!r}")
    if source.startswith("noise:"):
        try:
            shape = tuple(int(d) for d in source[len("noise:"):].split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise UsageError(f"--calibration {source!r}: expected noise:D1,D2,... with positive dimensions")
        generator = torch.Generator().manual_seed(seed)
        data = torch.randn((samples, *shape), generator=generator)
    else:
        data = _array_file(source, samples)
    return [data[i:i + BATCH] for i in range(0, len(data), BATCH)]


def _array_file(source: str, samples: int) -> torch.Tensor:
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"--calibration {source}: no such file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UsageError(f"--calibration {source}: not a .npy array file ({e})") from None
    if array.ndim < 1 or array.shape[0] < 1:
        raise UsageError(f"--calibration {source}: expected an array of samples along its first axis, got shape "
                         f"{array.shape}")
    taken = np.array(array[:samples])
    if taken.dtype.kind == "f":
        return torch.from_numpy(taken.astype(np.float32))
    if taken.dtype.kind in "iu":
        return torch.from_numpy(taken.astype(np.int64))
    raise UsageError(f"--calibration {source}: samples must be floats or integers, got {taken.dtype}")


def calibrated_rd_weights(module: torch.nn.Module, batches: list, *, progress: bool = False,
                          probes: int = 2) -> dict[str, float]:
    """:func:`~dcformat.training.sensitivity.module_rd_weights` over ``batches``, with a
    progress bar over them."""
    from tqdm import tqdm

    with _users_model(batches):
        return module_rd_weights(module, tqdm(batches, disable=not progress, unit="batch", desc="calibrating"),
                                 probes=probes)


@contextmanager
def _users_model(batches: list):
    """The user's module failing on the user's inputs: one line (UsageError), not a traceback."""
    try:
        yield
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"the model failed on the calibration inputs (shape {tuple(batches[0].shape[1:])}): "
                         f"{first}") from None


def input_weights(module: torch.nn.Module, batches: list, *, progress: bool = False) -> dict[str, np.ndarray]:
    """The means of every conv and linear layer's inputs over their spread, for row sums
    (:func:`dcformat.compress.rowsums.keep_row_sums`), keyed by weight name.

    A row r of a layer's weight meets, at each output position, the inputs a row of the
    unfolded input holds (zero padding included): their mean ``m_j`` sets the bias its
    rounding errors add, ``sum_j m_j e_j``, against the noise ``v * sum_j e_j**2`` of the
    inputs' mean variance ``v``. Each value is ``m_j / sqrt(v)``, an array of ``(groups,
    row)`` (a grouped or depthwise convolution's rows see their group's inputs). A layer
    whose inputs never vary is left out.
    """
    from .gptq import visit_layer_inputs

    sums: dict[str, list] = {}

    def visit(name, cols):
        acc = sums.setdefault(name, [0.0, 0.0, 0])
        acc[0] = acc[0] + cols.sum(dim=1)
        acc[1] = acc[1] + (cols * cols).sum(dim=1)
        acc[2] += int(cols.shape[1])

    with _users_model(batches):
        visit_layer_inputs(module, batches, visit, progress=progress)
    out = {}
    for name, (total, squares, rows) in sums.items():
        mean = (total / rows).numpy()
        spread = float(np.mean(np.maximum((squares / rows).numpy() - mean * mean, 0.0)))
        if spread > 0.0 and np.isfinite(spread):
            out[name] = mean / np.sqrt(spread)
    return out
