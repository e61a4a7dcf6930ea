"""The ``dcformat`` command: a thin shell over the public API.

Exit codes (also in ``dcformat --help`` and the README):

====  =====================================================================================
0     success
1     the input ``.dcf`` file is invalid or failed verification
2     wrong usage: bad or contradictory arguments or settings, an output that exists
      without ``--force``, a checkpoint the converters cannot read
3     an input (the model, ``--settings``, ``--rd-weights``, ``--prototxt``) is missing, a
      directory, or cannot be read (permission denied, I/O error)
4     the output could not be written: disk full, quota exceeded, file too large,
      read-only file system, permission denied, a missing directory; nothing was written
130   interrupted (Ctrl-C); nothing was written
====  =====================================================================================

Every failure is one line on stderr that names the file, never a traceback, for a
condition of the machine or of the input. The API raises those as
:class:`~dcformat.errors.StorageError` (each also the built-in ``FileNotFoundError``,
``IsADirectoryError``, ``PermissionError`` or ``OSError``, with its errno, and whether it
was reading or writing); they are caught as ``OSError`` before the generic
``DCFormatError``, so a bare ``OSError`` from below the API is reported the same way.

``compress`` warns in one line on stderr when a compressed tensor ends below
:data:`QUALITY_FLOOR_DB` (``--preset paper`` without retraining does), pointing to the
retraining API in :mod:`dcformat.training`; ``-q`` suppresses it with the table and notes.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import (DCFormatError, DirectoryNotFound, FormatError, IsADirectory, OutputExists, UsageError,
                     storage_errors)

#: A compressed tensor below this SQNR (relative RMS error above 0.32) draws a warning.
QUALITY_FLOOR_DB = 10.0

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_INVALID}    the input .dcf file is invalid or failed verification
  {EXIT_USAGE}    wrong usage: bad or contradictory options, an output that exists without --force,
       a checkpoint the converters cannot read
  {EXIT_INPUT}    an input is missing, a directory, or cannot be read
  {EXIT_OUTPUT}    the output could not be written (disk full, read-only, permission, no such
       directory); nothing was written
  {EXIT_INTERRUPTED}  interrupted; nothing was written"""

#: errno values that only a write gives, and how the message says them.
_WRITE_ERRNOS = {errno.ENOSPC: "disk full (no space left on device)", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "file too large for this file system or limit",
                 errno.EROFS: "read-only file system"}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("dcformat: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `dcformat info x.dcf | head`
        sys.stderr.close()
        return EXIT_OK
    except OutputExists as exc:  # appeared while we worked: checked once before, too
        print(f"dcformat: {exc.path} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # before DCFormatError: the API's file errors may be both
        code, message = _os_failure(exc, args)
        print(f"dcformat: {message}", file=sys.stderr)
        return code
    except FormatError as exc:  # a model directory's error names its shard or index
        print(f"dcformat: {getattr(exc, 'shard', None) or getattr(args, 'input', '')}: invalid file: {exc}",
              file=sys.stderr)
        return EXIT_INVALID
    except DCFormatError as exc:
        print(f"dcformat: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _os_failure(exc: OSError, args) -> tuple[int, str]:
    """(exit code, message) of an OSError: an input that cannot be read, or an output not written.

    The API's :class:`~dcformat.errors.StorageError` says which (``action``); a bare
    OSError is an output's when only a write gives it or it names no input.
    """
    name = exc.filename
    output = getattr(args, "output_path", None)
    action = getattr(exc, "action", None)
    if action is None:
        is_input = name is not None and _same_file(name, _inputs(args))
        action = "write" if output is not None and (exc.errno in _WRITE_ERRNOS or not is_input) else "read"
    if action == "write" and output is not None:
        if isinstance(exc, FileNotFoundError):
            reason = f"the directory {output.parent} does not exist"
        elif isinstance(exc, IsADirectoryError):
            reason = "it is a directory, not a file"
        else:
            reason = _WRITE_ERRNOS.get(exc.errno) or _reason(exc)
        return EXIT_OUTPUT, f"{output}: cannot write: {reason}; nothing was written"
    if isinstance(exc, FileNotFoundError):
        reason = "no such file or directory"
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a directory, not a file" + _MODEL_DIRECTORY.get(getattr(getattr(args, "func", None), "__name__", ""), "")
    else:
        reason = _reason(exc)
    return EXIT_INPUT, f"{name if name is not None else args.input}: cannot read: {reason}"


#: What a command would have taken for a directory: why a directory input was not one.
_MODEL_DIRECTORY = {
    "cmd_compress": ", nor a model directory (it holds no model.safetensors, model.safetensors.index.json, "
                    "pytorch_model.bin or pytorch_model.bin.index.json)",
    **dict.fromkeys(("cmd_decompress", "cmd_info", "cmd_verify"),
                    ", nor a compressed model directory (it holds no model.dcf.index.json)")}


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def _inputs(args) -> list[str]:
    return [p for p in (getattr(args, k, None) for k in ("input", "settings", "rd_weights", "prototxt")) if p]


def _same_file(name, paths) -> bool:
    return any(os.path.abspath(name) == os.path.abspath(p) for p in paths)


# --- commands ---------------------------------------------------------------------


def cmd_compress(args) -> int:
    from .convert import compress_checkpoint
    from .inspect import describe, format_table

    if _is_model_directory(args.input, compressed=False):
        return _compress_directory(args)
    for flag, value in (("--workers", args.workers), ("--ray", args.ray)):
        if value is not None:
            raise UsageError(f"{flag} spreads a model directory's shards over processes, and {args.input} is one "
                             f"file; drop {flag}")
    src = _readable(args.input)
    if src.suffix.lower() == ".dcf":
        raise UsageError(f"{src} is already a .dcf file, and compressing it again would decode and re-encode "
                         f"its values; to compress it with other settings, `dcformat decompress` it first")
    dst = args.output_path = _output_path(args.input, args.output, ".dcf")
    _refuse_clobber(src, dst, args.force)
    settings = _settings(args)
    module = batches = means = None
    if args.model:
        settings, module, batches = _calibrated(args, src, settings)
        # row sums weighed by the inputs' means, from real samples only (noise has means of
        # its own: on MobileNetV2 they did worse than no weights); GPTQ uses the inputs'
        # whole second moment instead
        if not args.gptq and not args.calibration.startswith("noise:"):
            from .training import calibrate

            means = calibrate.input_weights(module, batches, progress=not args.quiet)
    if args.gptq:
        from .training import gptq

        reports, skipped = gptq.compress_checkpoint(src, dst, settings, module, batches, prototxt=args.prototxt,
                                                    overwrite=args.force, progress=not args.quiet,
                                                    safe_globals=args.safe_global or ())
    else:
        reports, skipped = compress_checkpoint(src, dst, settings, prototxt=args.prototxt,
                                               overwrite=args.force, progress=not args.quiet,
                                               safe_globals=args.safe_global or (), input_weights=means)
    if skipped and not args.quiet:
        print(f"dcformat: note: {_count(len(skipped), 'value')} of the checkpoint, neither tensors nor JSON "
              f"values, {'is' if len(skipped) == 1 else 'are'} not stored: {_some(skipped)}", file=sys.stderr)
    rows, banks, size = describe(dst)
    if not args.quiet:
        errors = {r.name: (r.kept_percent, r.rel_rms_error) for r in reports}
        print(format_table(rows, size, banks, errors))
        _print_sqnr(reports, size)
    print(f"wrote {dst}: {size:,} bytes, {_against_dense(size, sum(r.dense_bytes for r in rows))}")
    if not args.quiet:
        _warn_below_floor(reports, args.preset)
    return 0


def _compress_directory(args) -> int:
    """``compress MODEL_DIR -o OUT_DIR``: a Hugging Face model directory, shard by shard."""
    from .convert import compress_directory, find_weights

    for dest, flag in (("model", "--model"), ("calibration", "--calibration"), ("gptq", "--gptq")):
        if _given(args, dest):
            raise UsageError(f"{flag} works on one checkpoint file, and {args.input} is a model directory; "
                             f"drop {flag}, or compress the directory's weights file by file")
    model = find_weights(args.input)
    dst = args.output_path = Path(args.output) if args.output else _sibling(args.input, "-dcf")
    settings = _settings(args, torch_input=model.kind == "torch")
    report = compress_directory(model.root, dst, settings, overwrite=args.force, workers=args.workers,
                                ray=args.ray, progress=not args.quiet, safe_globals=args.safe_global or ())
    reports = report.reports
    if not args.quiet:
        for shard in report.shards:
            print(f"{shard.file:<32} {_count(len(shard.reports), 'tensor'):>12} {shard.file_bytes:>14,} bytes  "
                  f"{_against_dense(shard.file_bytes, shard.dense_bytes)}")
        _print_sqnr(reports, report.file_bytes)
        _directory_notes(report)
    print(f"wrote {dst}: {_count(len(report.shards), 'shard')}, {_count(len(reports), 'tensor')}"
          f"{_aliases(len(report.aliases))}, {report.file_bytes:,} bytes, "
          f"{_against_dense(report.file_bytes, report.dense_bytes)}")
    if not args.quiet:
        _warn_below_floor(reports, args.preset)
    return 0


def _print_sqnr(reports, size: int) -> None:
    """The SQNR range of the compressed tensors and the bits per parameter of ``size`` bytes."""
    lossy = [r for r in reports if r.kind != "exact"]
    if lossy:
        worst = min(lossy, key=lambda r: r.sqnr_db)
        params = sum(r.elements for r in reports)
        print(f"SQNR {min(r.sqnr_db for r in lossy):.1f} to {max(r.sqnr_db for r in lossy):.1f} dB "
              f"(lowest: {worst.name}); {8 * size / max(params, 1):.3f} bits per parameter")


def _directory_notes(report) -> None:
    """One note line each for what a directory conversion did besides the shards."""
    notes = []
    if report.copied:
        notes.append(f"copied {_count(len(report.copied), 'file')} ({_some(report.copied)})")
    if report.aliases:
        notes.append(f"{_count(len(report.aliases), 'tied tensor')} stored once: "
                     f"{_some([f'{a} -> {t}' for a, t in report.aliases.items()])}")
    if report.duplicates:
        notes.append(f"{_count(len(report.duplicates), 'tensor')} held by two shards, stored once: "
                     f"{_some(report.duplicates)}")
    if report.left_out:
        notes.append(f"not copied (the model's weights in other formats): {_some(report.left_out)}")
    skipped = [name for shard in report.shards for name in shard.skipped]
    if skipped:
        notes.append(f"{_count(len(skipped), 'value')} of the checkpoint, neither tensors nor JSON values, "
                     f"not stored: {_some(skipped)}")
    for note in notes:
        print(f"dcformat: note: {note}", file=sys.stderr)


def _calibrated(args, src: Path, settings):
    """``settings`` with rd_weights measured on the ``--model`` built from ``src``, on the
    ``--calibration`` inputs (dcformat.training.calibrate); and that module and those inputs."""
    from dataclasses import replace

    from .convert import read_checkpoint
    from .training import calibrate

    checkpoint = read_checkpoint(src, prototxt=args.prototxt, safe_globals=args.safe_global or ())
    module = calibrate.build_module(args.model, checkpoint.tensors)
    del checkpoint
    batches = calibrate.calibration_batches(args.calibration, args.calibration_samples)
    weights = calibrate.calibrated_rd_weights(module, batches, progress=not args.quiet)
    return replace(settings, rd_weights=weights), module, batches


def _warn_below_floor(reports, preset: str | None) -> None:
    """One line on stderr when compressed tensors fall below QUALITY_FLOOR_DB, pointing to retraining."""
    lossy = [r for r in reports if r.kind != "exact"]
    low = [r for r in lossy if r.sqnr_db < QUALITY_FLOOR_DB]
    if not low:
        return
    worst = min(low, key=lambda r: r.sqnr_db)
    why = ("--preset paper is the paper's settings, meant for a model retrained with them"
           if preset == "paper" else "a model retrained under its compression keeps its accuracy")
    print(f"dcformat: warning: {len(low)} of {len(lossy)} compressed tensors are below {QUALITY_FLOOR_DB:g} dB "
          f"SQNR (lowest: {worst.name}, {worst.sqnr_db:.1f} dB), which without retraining may break the model; "
          f"{why}: retrain with dcformat.training (Pruner, WeightSharing/quantize, dsd) and save with "
          f"export_dcf", file=sys.stderr)


def cmd_decompress(args) -> int:
    from .convert import DcfSource, write_checkpoint
    from .safe_open import safe_open

    if _is_model_directory(args.input):
        return _decompress_directory(args)
    src = _readable(args.input)
    dst = args.output_path = _output_path(args.input, args.output, ".safetensors")
    _refuse_clobber(src, dst, args.force)
    with safe_open(src) as f:  # decoded one tensor at a time when the output is safetensors
        not_stored = write_checkpoint(DcfSource(f), dst, f.metadata(), overwrite=args.force)
        print(f"wrote {dst}: {len(f.keys())} tensors")
    if not_stored and not args.quiet:
        print(f"dcformat: note: the file's metadata ({_count(len(not_stored), 'entry', 'entries')}: "
              f"{_some(not_stored)}) is not in {dst.name}, a PyTorch state dict of tensors; decompress to "
              f".safetensors to keep it", file=sys.stderr)
    return 0


def _decompress_directory(args) -> int:
    """``decompress DCF_DIR -o DENSE_DIR``: sharded safetensors and the index transformers loads."""
    from .convert import decompress_directory

    dst = args.output_path = Path(args.output) if args.output else _sibling(args.input, "-dense")
    if args.output and Path(args.output).suffix.lower() in (".safetensors", ".pt", ".pth", ".bin"):
        raise UsageError(f"{args.input} is a model directory, which decompresses to a directory, not to "
                         f"{args.output}; name an output directory")
    report = decompress_directory(args.input, dst, overwrite=args.force, progress=not args.quiet)
    tensors = sum(shard.tensors for shard in report.shards)
    print(f"wrote {dst}: {_count(len(report.shards), 'shard')}, {_count(tensors, 'tensor')}"
          + (f" ({_count(len(report.aliases), 'alias', 'aliases')} written as copies of their tensors)"
             if report.aliases else ""))
    if not args.quiet and report.copied:
        print(f"dcformat: note: copied {_count(len(report.copied), 'file')} ({_some(report.copied)}); "
              f"config.json without its dcformat quantization_config", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    from .inspect import describe, format_table
    from .safe_open import safe_open

    if _is_model_directory(args.input):
        return _info_directory(args)
    rows, banks, size = describe(_readable(args.input))
    if args.json:
        with safe_open(args.input) as f:
            meta, version = f.metadata(), f.version
        print(json.dumps({"version": list(version), "file_bytes": size, "metadata": meta,
                          "payloads_checked": False, "banks": [b.as_dict() for b in banks],
                          "tensors": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(format_table(rows, size, banks))
        print("header and layout checked; payload checksums not checked (`dcformat verify` checks them "
              "and decodes every tensor)")
    return 0


def _info_directory(args) -> int:
    """``info DCF_DIR``: a line per shard and the totals, from the headers (``--json``: every tensor)."""
    from .convert import describe_directory, read_index

    index = read_index(args.input)
    shards = describe_directory(args.input)
    size = sum(s[3] for s in shards)
    dense = sum(r.dense_bytes for s in shards for r in s[1])
    if args.json:
        print(json.dumps({"index": index.metadata, "file_bytes": size, "dense_bytes": dense, "payloads_checked": False,
                          "shards": [{"file": name, "version": list(version), "file_bytes": nbytes,
                                      "banks": [b.as_dict() for b in banks], "tensors": [r.as_dict() for r in rows]}
                                     for name, rows, banks, nbytes, version in shards]}, indent=2))
        return 0
    head = f"{'shard':<32} {'tensors':>8} {'bytes':>14} {'dense bytes':>14} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for name, rows, _, nbytes, _ in shards:
        part = sum(r.dense_bytes for r in rows)
        print(f"{name:<32} {len(rows):>8,} {nbytes:>14,} {part:>14,} {part / nbytes if nbytes else 0:>6.1f}x")
    print("-" * len(head))
    tensors = sum(len(s[1]) for s in shards)
    print(f"{'total':<32} {tensors:>8,} {size:>14,} {dense:>14,} {dense / size if size else 0:>6.1f}x")
    if index.aliases:
        print(f"{_count(len(index.aliases), 'alias', 'aliases')} (tied weights stored once): "
              f"{_some([f'{a} -> {t}' for a, t in index.aliases.items()])}")
    print("headers and layout checked; payload checksums not checked (`dcformat verify` checks them "
          "and decodes every tensor)")
    return 0


def cmd_verify(args) -> int:
    from .numpy import load_file

    if _is_model_directory(args.input):
        from .convert import read_index, verify_directory

        tensors, aliases = verify_directory(args.input)
        shards = len(read_index(args.input).shards)
        print(f"{args.input}: OK ({_count(shards, 'shard')}, {_count(tensors, 'tensor')}{_aliases(aliases)}, "
              f"checksums and full decode)")
        return 0
    tensors = load_file(_readable(args.input), verify=True)
    print(f"{args.input}: OK ({len(tensors)} tensors, checksums and full decode)")
    return 0


# --- helpers ---------------------------------------------------------------------


def _against_dense(size: int, dense: int) -> str:
    """'30.3x smaller than dense', or a percentage near 1x, where a ratio would round to 1.0x."""
    if size > dense:
        return f"{100.0 * (size - dense) / max(dense, 1):,.1f}% larger than dense"
    if size == dense:
        return "the same size as dense"
    if dense < 1.1 * size:
        return f"{100.0 * (dense - size) / dense:.1f}% smaller than dense"
    return f"{dense / size:.1f}x smaller than dense"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _aliases(n: int) -> str:
    return f" and {_count(n, 'alias', 'aliases')}" if n else ""


def _some(names: list[str], shown: int = 3) -> str:
    listed = ", ".join(repr(n) for n in names[:shown])
    return listed + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def _output_path(src: str, out: str | None, suffix: str) -> Path:
    if out:
        return Path(out)
    path = Path(src)
    return path.with_name(path.stem + suffix) if path.suffix != suffix else path.with_name(path.stem + ".out" + suffix)


def _is_model_directory(path: str, compressed: bool = True) -> bool:
    """Whether ``path`` is a (compressed) model directory; any other directory is refused as
    a single-file input is (exit 3, "it is a directory")."""
    from .convert import is_model_directory
    from .convert.directory import INDEX_NAME

    if compressed:
        return (Path(path) / INDEX_NAME).is_file()
    return is_model_directory(path)


def _sibling(path: str, tail: str) -> Path:
    """The default output directory of a model directory: beside it, its name and ``tail``."""
    path = Path(path).resolve()
    return path.with_name(path.name + tail)


def _readable(path) -> Path:
    """``path`` once it is known to be a file this process may read, checked before any output."""
    with storage_errors(path, "read"), open(path, "rb"):  # missing, a directory, unreadable
        pass
    return Path(path)


def _refuse_clobber(src: Path, dst: Path, force: bool) -> None:
    if not dst.parent.is_dir():
        raise DirectoryNotFound(dst, errno.ENOENT, action="write")
    if dst.is_dir():
        raise IsADirectory(dst, errno.EISDIR, action="write")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise UsageError(f"{dst}: output is the input file; choose another output path")
    if dst.exists() and not force:
        raise UsageError(f"{dst} exists; pass --force to overwrite it")


def _settings(args, torch_input: bool | None = None):
    from dataclasses import replace

    from .compress import CompressionSettings

    _check_options(args, torch_input)
    if args.settings:
        text = Path(args.settings).read_text()
        settings = CompressionSettings.from_json(text)
    else:
        # A size budget means the rd preset: ecq for every float tensor of 64 values or more,
        # each weighed by its size (tensor_balance) unless --model or --rd-weights say what each
        # tensor is worth: then by those weights alone.
        settings = CompressionSettings.preset(args.preset or ("rd" if args.bits_per_param is not None else "default"))
        if not args.preset and (args.model or args.rd_weights):
            settings = replace(settings, tensor_balance=0.0)
    overrides = {k: v for k, v in (("sparsity", args.sparsity), ("quality", args.quality),
                                   ("code_bits", args.code_bits), ("gap_bits", args.gap_bits),
                                   ("init", args.init), ("max_rel_error", args.max_rel_error),
                                   ("min_sqnr_db", args.min_sqnr), ("groups", args.groups)) if v is not None}
    if args.bits_per_param is not None or args.max_rel_error is not None or args.min_sqnr is not None:
        overrides.setdefault("quantizer", "ecq")
        overrides.setdefault("code_bits", args.code_bits or 12)
        if not args.settings:  # a settings file says itself whether it keeps row sums
            overrides.setdefault("keep_row_sums", True)
    if args.row_sums is not None:
        overrides["keep_row_sums"] = args.row_sums == "keep"
    if args.no_huffman:
        overrides["huffman"] = False
    settings = settings.with_overrides(**overrides)
    if args.bits_per_param is not None:
        settings = replace(settings, bits_per_param=args.bits_per_param)
    _check_settings(args, settings)
    if args.rd_weights:
        settings = replace(settings, rd_weights=_rd_weights(Path(args.rd_weights)))
    if args.exact is not None:
        settings = replace(settings, exact=args.exact)
    return settings


#: compress options that make a file lossy (each contradicts ``--preset lossless``).
_LOSSY = (("sparsity", "--sparsity"), ("quality", "--quality"), ("code_bits", "--code-bits"),
          ("gap_bits", "--gap-bits"), ("init", "--init"), ("no_huffman", "--no-huffman"),
          ("bits_per_param", "--bits-per-param"), ("max_rel_error", "--max-rel-error"),
          ("min_sqnr", "--min-sqnr"), ("rd_weights", "--rd-weights"), ("groups", "--groups"), ("row_sums", "--row-sums"),
          ("model", "--model"))


def _given(args, dest: str) -> bool:
    value = getattr(args, dest)
    return value is not None and value is not False


def _check_options(args, torch_input: bool | None = None) -> None:
    """Refuse compress options that contradict each other, before any work (one line each).

    ``torch_input``: whether the input holds PyTorch checkpoints (by default, its suffix says).
    """
    given = [flag for dest, flag in _LOSSY if _given(args, dest)]
    if args.preset and args.settings:
        raise UsageError(f"--preset {args.preset} and --settings both give the base settings; pass one of them")
    if args.preset == "lossless" and given:
        raise UsageError(f"--preset lossless stores every tensor exactly, and {given[0]} would make the file "
                         f"lossy; drop one of them")
    for a, b, why in (("sparsity", "quality", "both set how much is pruned"),
                      ("max_rel_error", "min_sqnr", "are the same bound (rel. error = 10**(-dB/20))")):
        if _given(args, a) and _given(args, b):
            raise UsageError(f"--{a.replace('_', '-')} and --{b.replace('_', '-')} {why}; pass one of them")
    ecq = (args.bits_per_param is not None or args.max_rel_error is not None or args.min_sqnr is not None
           or args.preset == "rd" or args.settings)
    if bool(args.model) != bool(args.calibration):
        raise UsageError("--model and --calibration go together: the model built by --model is run on the "
                         "--calibration inputs (an .npy file of samples, or noise:C,H,W)")
    if args.model and args.rd_weights:
        raise UsageError("--model measures the rd weights that --rd-weights would give; pass one of them")
    if args.gptq and not (args.model and args.calibration):
        raise UsageError("--gptq chooses the codes from the layers' inputs, which --model run on --calibration "
                         "gives; add --model and --calibration")
    if args.model and args.bits_per_param is None:
        raise UsageError("--model/--calibration steer a size budget, and there is none; add --bits-per-param")
    if args.groups == "rows" and not ecq:
        raise UsageError("--groups rows shares the ecq quantizer's codebook across a tensor's rows; add "
                         "--bits-per-param, --max-rel-error, --min-sqnr or --preset rd")
    if args.row_sums and not ecq:
        raise UsageError(f"--row-sums {args.row_sums} steers the ecq quantizer's codes; add --bits-per-param, "
                         "--max-rel-error, --min-sqnr or --preset rd")
    if args.prototxt and Path(args.input).suffix.lower() != ".net":
        raise UsageError(f"--prototxt describes a 2016 .net file, and {args.input} is not one; drop --prototxt")
    from .convert import TORCH_SUFFIXES

    if torch_input is None:
        torch_input = Path(args.input).suffix.lower() in TORCH_SUFFIXES
    if args.safe_global and not torch_input:
        raise UsageError(f"--safe-global allows a global in a PyTorch checkpoint's pickle, and {args.input} is not "
                         f"one ({', '.join(TORCH_SUFFIXES)}); drop --safe-global")


def _ecq_source(args) -> str:
    """The option that selects the ecq quantizer, for messages ('' when none of them does)."""
    for dest in ("bits_per_param", "max_rel_error", "min_sqnr"):
        if _given(args, dest):
            return f"--{dest.replace('_', '-')}"
    return f"--preset {args.preset}" if args.preset else (f"--settings {args.settings}" if args.settings else "")


def _check_settings(args, settings) -> None:
    """Refuse what the resolved settings would silently ignore or cannot do (one line each)."""
    chosen = [s for s in (settings.default, *(r.settings for r in settings.rules)) if s is not None]
    ecq = [s for s in chosen if s.quantizer == "ecq"]
    pruning = [s for s in chosen if s.pruned]
    source = _ecq_source(args)
    if any(s.pruned for s in ecq):
        what = next((f"--{d}" for d in ("sparsity", "quality") if _given(args, d)), None)
        what = what or (f"--preset {args.preset}" if args.preset else f"--settings {args.settings}")
        raise UsageError(f"{source} uses the ecq quantizer, which does not prune, and {what} prunes; "
                         f"drop one of them")
    if chosen and len(ecq) == len(chosen):
        for dest in ("init", "gap_bits"):
            if _given(args, dest):
                raise UsageError(f"--{dest.replace('_', '-')} is a k-means option, and {source} uses the ecq "
                                 f"quantizer, which has no use for it; drop one of them")
    if _given(args, "gap_bits") and not pruning:
        raise UsageError("--gap-bits sets the relative-index width of pruned tensors, and these settings prune "
                         "none; add --sparsity or --quality, or drop --gap-bits")
    budget = "--bits-per-param" if _given(args, "bits_per_param") else source
    if args.rd_weights and settings.bits_per_param is None:
        raise UsageError("--rd-weights steers a size budget, and there is none; add --bits-per-param, or drop "
                         "--rd-weights")
    if args.no_huffman and settings.bits_per_param is not None:
        raise UsageError(f"--no-huffman packs codes at fixed width, and the {budget} budget is planned on "
                         f"Huffman-coded sizes; drop one of them")


def _rd_weights(path: Path) -> dict:
    """A JSON object of tensor name -> rd_weight factor (dcformat.training.sensitivity writes them)."""
    import json

    from .errors import InvalidSettings

    try:
        weights = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InvalidSettings(f"{path}: not valid JSON: {e}") from None
    if not isinstance(weights, dict):
        raise InvalidSettings(f"{path}: rd weights must be a JSON object of tensor name -> factor")
    return weights


def _parser() -> argparse.ArgumentParser:
    from .compress.settings import INITS, PRESETS

    parser = argparse.ArgumentParser(prog="dcformat", description="Deep Compression storage format and codec.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dcformat {__version__}")
    sub = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    p = command("compress", help="checkpoint (.safetensors/.pt/.pth/.bin/.net) -> .dcf, or a Hugging Face model "
                                 "directory -> a directory of .dcf shards")
    p.add_argument("input", help="a checkpoint file, or a model directory (config.json, model.safetensors or "
                                 "its index and shards, or pytorch_model.bin or its index and shards)")
    p.add_argument("-o", "--output", help="output .dcf (default: input name with .dcf); for a model directory, "
                                          "the directory to create (default: MODEL_DIR-dcf)")
    p.add_argument("--preset", choices=PRESETS,
                   help="named settings (default: default); paper is the paper's, meant for a retrained model")
    p.add_argument("--settings", help="JSON file with CompressionSettings (overrides --preset)")
    p.add_argument("--sparsity", type=float, help="prune this fraction of every compressed tensor")
    p.add_argument("--quality", type=float, help="prune |w| < QUALITY x std(w)")
    p.add_argument("--code-bits", type=int, help="codebook of at most 2**BITS entries")
    p.add_argument("--gap-bits", type=int, help="relative-index width of pruned tensors")
    p.add_argument("--init", choices=INITS, help="k-means initialisation")
    p.add_argument("--no-huffman", action="store_true", help="pack streams at fixed width")
    p.add_argument("--bits-per-param", type=float, help="file size budget in bits per parameter (ecq, equal slope)")
    p.add_argument("--max-rel-error", type=float, help="most relative RMS error of each compressed tensor (ecq)")
    p.add_argument("--min-sqnr", type=float, help="least SQNR in dB of each compressed tensor (ecq)")
    p.add_argument("--rd-weights", help="JSON object of tensor name -> rd_weight factor steering --bits-per-param "
                                        "(e.g. from dcformat.training.sensitivity)")
    p.add_argument("--model", metavar="MODULE:CALLABLE",
                   help="a callable (MODULE:NAME or FILE.py:NAME; its code is run) returning the torch module the "
                        "checkpoint's tensors load into; with --calibration, the bit budget is steered by how much "
                        "the module's output depends on each tensor")
    p.add_argument("--calibration", metavar="FILE.npy|noise:C,H,W",
                   help="inputs for --model: an .npy array of samples (images as floats, token ids as ints) or "
                        "Gaussian noise of a shape; never the data you measure quality on")
    p.add_argument("--calibration-samples", type=int, default=256, metavar="N",
                   help="use at most N calibration samples (default 256)")
    p.add_argument("--gptq", action="store_true",
                   help="with --model and --calibration: choose the codes of each conv and linear weight by GPTQ "
                        "(each column's rounding error compensated on the next, through the layer's input "
                        "statistics), same codebooks and budget")
    p.add_argument("--groups", choices=("tensor", "rows"),
                   help="ecq: one codebook per tensor, or shared by its rows (output channels), each row scaled "
                        "by its RMS (format v1.1: GROUPED values)")
    p.add_argument("--row-sums", choices=("keep", "free"),
                   help="ecq: keep each row's (output channel's) sum by moving a few codes to a neighbouring "
                        "entry, a data-free correction of the output bias quantization adds (keep: the default "
                        "wherever the ecq quantizer is used), or quantize each value alone (free)")
    p.add_argument("--exact", choices=("planes", "raw"),
                   help="how tensors kept exact are stored: planes (default; float tensors as entropy-coded "
                        "exponent and mantissa planes where smaller, bit-exact, format v1.2) or raw (as they are)")
    p.add_argument("--prototxt", help="Caffe prototxt of a 2016 .net file")
    p.add_argument("--safe-global", action="append", metavar="MODULE.NAME",
                   help="let a trusted PyTorch checkpoint's pickle use this class or function (torch's "
                        "safe_globals; weights_only stays on); repeatable")
    p.add_argument("--workers", type=int, metavar="N",
                   help="a model directory's shards convert on N processes side by side (default: every core, "
                        "at most one per shard); the output is the same for every N")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="a model directory's shards convert as tasks on the Ray cluster at ADDRESS (auto, "
                        "HOST:PORT, or local for one of this machine's cores), retried if a worker dies; its "
                        "nodes must see the input and output at the same paths; same output as one process")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the summary line (no table, notes or quality warning)")
    p.set_defaults(func=cmd_compress)

    p = command("decompress", help=".dcf -> .safetensors or PyTorch (.pt/.pth/.bin); a directory of .dcf shards -> "
                                   "sharded safetensors")
    p.add_argument("input")
    p.add_argument("-o", "--output", help="output file; its suffix picks the format (default .safetensors); for a "
                                          "model directory, the directory to create (default: DCF_DIR-dense)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no note on stderr")
    p.set_defaults(func=cmd_decompress)

    p = command("info", help="per-tensor table of a .dcf file, or per-shard of a model directory (headers only: "
                             "`verify` checks the payloads)")
    p.add_argument("input")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = command("verify", help="check every checksum and decode every tensor (of every shard of a model directory)")
    p.add_argument("input")
    p.set_defaults(func=cmd_verify)
    return parser


if __name__ == "__main__":
    sys.exit(main())
