"""Cost of the pretrained bank's feature extraction, per source, against a plain forward pass.

    python benchmarks/bench_pretrained_bank_cost.py [--n 32] [--reps 2] [--out benchmarks/results/pretrained_bank_cost]
    python benchmarks/bench_pretrained_bank_cost.py --sweep mobilenet_v2-imagenet --n 64 --reps 2 --out DIR

For every available pretrained source (docs/sources.md) it times, in this one process and with the same threads,
on the same ``--n`` decoded VisDA images (128 px, resized to the source's native size):

- ``extract``: :func:`depara.benches.realbank.pretrained.layer_features` as the bank runs it now (batches of
  ``BATCH_SIZE``, channels-last layout, forward hooks, pooling);
- ``before``: the same with the settings of the previous round (batches of 32, contiguous layout);
- ``onnxruntime`` (ONNX sources only): the package's own file run by onnxruntime, one thread, one image a call;
- ``floor``: a plain forward-only loop of the model over the same preprocessed batches in the faster layout (no hooks,
  no pooling, no early stop: the whole network, heads included), so ``extract / floor`` may fall below 1 where
  the hooks stop the pass before the head.

Times are CPU seconds of this process (``time.process_time``; the machine is shared, so wall times are not
comparable), the fastest of ``--reps`` interleaved repetitions. Beside them, per source: ``load`` (building the
module from its weight file, once per run), ``resize`` (resize + normalise of the images: part of ``extract``),
``hooks_pooling`` (``extract`` minus ``resize`` minus ``floor``; negative where the hooks stop the pass early) and
``store`` (writing the pooled features to the cache); and once, ``decode_cpu_s``: loading and decoding every
image set (shared by all sources). The bank's fresh extraction time is extrapolated
from each source's per-image ``extract`` time times the images it extracts (every image set once), and labelled
"extrapolated". Writes ``cost.csv`` and ``cost.json`` (with ``uptime``'s load before and after) under ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from depara.io.files import write_csv, write_json
from depara.benches.realbank import pretrained as P
from depara.benches.realbank import pretrained_bench as B
from depara.benches.taskbank.cache import save_tensors_entry


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


@torch.inference_mode()
def _forward_only(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    for x in batches:
        model(x)


def _onnxruntime(spec: P.PretrainedSource, batches: list[torch.Tensor]):
    """A forward-only loop of the package's own ONNX file in onnxruntime (one thread, one image per call: the
    files fix the batch size at 1) over the same images: the reference for onnx2torch's converted module."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(P.weight_file(spec)), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = [x[i:i + 1].numpy() for x in batches for i in range(len(x))]
    session.run(None, {name: images[0]})
    return lambda: [session.run(None, {name: im}) for im in images]


def time_source(name: str, images01: np.ndarray, reps: int) -> dict:
    """CPU seconds of ``extract``, ``before`` and ``floor`` for source ``name`` on ``images01`` (fastest of reps)."""
    spec = P.get_source(name)
    t0 = time.process_time()
    plain = P.load_source(name)
    load = time.process_time() - t0
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    bs = P.BATCH_SIZE
    batches = [P.preprocess(spec, images01[i:i + bs]).contiguous(memory_format=torch.channels_last)
               for i in range(0, len(images01), bs)]
    runs = {"extract": lambda: P.layer_features(spec, fast, images01),
            "before": lambda: P.layer_features(spec, plain, images01, batch_size=32, channels_last=False),
            "floor": lambda: _forward_only(fast, batches),
            "resize": lambda: [P.preprocess(spec, images01[i:i + bs]) for i in range(0, len(images01), bs)]}
    P.layer_features(spec, fast, images01[:2])  # warm-up (oneDNN primitives)
    P.layer_features(spec, plain, images01[:2], batch_size=2, channels_last=False)
    if spec.file.endswith(".onnx"):
        runs["onnxruntime"] = _onnxruntime(spec, [x.contiguous() for x in batches])
    best = {k: float("inf") for k in runs}
    for _ in range(reps):
        for k, fn in runs.items():
            best[k] = min(best[k], _cpu(fn))
    n = len(images01)
    best.setdefault("onnxruntime", float("nan"))
    best["hooks_pooling"] = best["extract"] - best["resize"] - best["floor"]
    best["load"] = load
    feats = {k: torch.from_numpy(v) for k, v in P.layer_features(spec, fast, images01).items()}
    with tempfile.TemporaryDirectory() as tmp:
        best["store"] = _cpu(lambda: save_tensors_entry(Path(tmp) / "f.safetensors", "key", feats, {}))
    return {"source": name, "input_size": spec.input_size, "images": n,
            **{f"{k}_cpu_s": round(v, 3) for k, v in best.items()},
            "extract_over_floor": round(best["extract"] / best["floor"], 3),
            "before_over_extract": round(best["before"] / best["extract"], 3),
            "floor_over_onnxruntime": round(best["floor"] / best["onnxruntime"], 3),
            "extract_images_per_cpu_s": round(n / best["extract"], 2),
            "before_images_per_cpu_s": round(n / best["before"], 2)}


def sweep(name: str, images01: np.ndarray, reps: int, sizes=(1, 2, 4, 8, 16, 32)) -> list[dict]:
    """CPU seconds of ``layer_features`` for source ``name`` at each batch size, contiguous and channels-last
    (fastest of ``reps`` interleaved repetitions): the measurement behind ``BATCH_SIZE``."""
    spec = P.get_source(name)
    models = {False: P.load_source(name), True: P.load_source(name)}
    for cl, model in models.items():
        P.layer_features(spec, model, images01[:2], channels_last=cl)
    best = {(cl, bs): float("inf") for cl in models for bs in sizes}
    wall = dict(best)
    for _ in range(reps):
        for cl, bs in best:
            w0 = time.perf_counter()
            cpu = _cpu(lambda: P.layer_features(spec, models[cl], images01, batch_size=bs, channels_last=cl))
            best[(cl, bs)], wall[(cl, bs)] = min(best[(cl, bs)], cpu), min(wall[(cl, bs)], time.perf_counter() - w0)
    return [{"source": name, "layout": "channels_last" if cl else "contiguous", "batch_size": bs,
             "images": len(images01), "threads": torch.get_num_threads(), "cpu_s": round(v, 3),
             "wall_s": round(wall[(cl, bs)], 3)} for (cl, bs), v in best.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="images per source (from VisDA)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pretrained_bank_cost"))
    ap.add_argument("--sweep", metavar="SOURCE", help="instead: time SOURCE at batch sizes 1-32 in both layouts "
                    "(writes sweep_threads<T>.csv)")
    ap.add_argument("--threads", type=int, help="torch threads (default: as set, e.g. by OMP_NUM_THREADS)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        args.out.mkdir(parents=True, exist_ok=True)
        load = _load()
        rows = sweep(P.get_source(args.sweep).name, B.IMAGE_SETS["visda"]()[0][:args.n], args.reps)
        for r in rows:
            print(f"{r['layout']:14s} batch {r['batch_size']:3d}, {r['threads']} thread(s): {r['cpu_s']:.2f} CPU s, "
                  f"{r['wall_s']:.2f} s wall", flush=True)
        print(f"load {load} -> {_load()}", flush=True)
        write_csv(args.out / f"sweep_threads{torch.get_num_threads()}.csv", rows)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    t0 = time.process_time()
    sets = [k for k, why in B.available_image_sets().items() if not why]  # decodes every image set (cached after)
    decode = round(time.process_time() - t0, 3)
    images01 = B.IMAGE_SETS["visda"]()[0][:args.n]
    per_source = sum(len(B.IMAGE_SETS[s]()[1]) for s in sets)
    rows = []
    for name in P.SOURCE_NAMES:
        if not P.available(P.get_source(name)):
            print(f"skip {name}: not installed", flush=True)
            continue
        row = time_source(name, images01, args.reps)
        row["bank_images"] = per_source
        row["bank_extract_cpu_s_extrapolated"] = round(per_source * row["extract_cpu_s"] / row["images"], 1)
        row["bank_before_cpu_s_extrapolated"] = round(per_source * row["before_cpu_s"] / row["images"], 1)
        rows.append(row)
        print(f"{name:30s} extract {row['extract_cpu_s']:6.2f} s  floor {row['floor_cpu_s']:6.2f} s  "
              f"ratio {row['extract_over_floor']:.2f}  before {row['before_cpu_s']:6.2f} s "
              f"(x{row['before_over_extract']:.2f})  {row['extract_images_per_cpu_s']:.1f} img/CPU-s  resize "
              f"{row['resize_cpu_s']:.2f} s  hooks+pooling {row['hooks_pooling_cpu_s']:+.2f} s  store {row['store_cpu_s']:.3f} s  "
              f"load {row['load_cpu_s']:.1f} s"
              + (f"  onnxruntime {row['onnxruntime_cpu_s']:.2f} s" if row["onnxruntime_cpu_s"] == row["onnxruntime_cpu_s"]
                 else ""), flush=True)
    total = sum(r["bank_extract_cpu_s_extrapolated"] for r in rows)
    total_before = sum(r["bank_before_cpu_s_extrapolated"] for r in rows)
    summary = {"bank_extract_cpu_s_extrapolated": round(total, 1),
               "bank_before_cpu_s_extrapolated": round(total_before, 1),
               "speedup": round(total_before / total, 2), "image_sets": sets, "images_per_source": per_source,
               "threads": torch.get_num_threads(), "batch_size": P.BATCH_SIZE, "n": args.n, "reps": args.reps,
               "load_before": load_before, "load_after": _load(), "torch": torch.__version__,
               "python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    print(f"bank extraction, {len(rows)} sources x {per_source} images (extrapolated): {total:.0f} CPU s now, "
          f"{total_before:.0f} CPU s with the previous settings (x{summary['speedup']:.2f}); "
          f"load {load_before} -> {summary['load_after']}", flush=True)
    write_csv(args.out / "cost.csv", rows)
    write_json(args.out / "cost.json", {"rows": rows, "summary": summary, "decode_cpu_s": decode})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
