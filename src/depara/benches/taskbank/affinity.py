"""Ground-truth transfer affinities of the bank, measured by actual training.

For every target task t and every other task s: freeze s's encoder, train a fresh t-head on s's
representation of t's LIMITED training set, and measure t's test loss. The same limited data trains a
from-scratch network (encoder + head) as the reference. Per (t, s):

- ``transfer_loss[t, s]``  mean test loss of the transfer (lower is better);
- ``affinity[t, s] = log(scratch_loss[t] / transfer_loss[t, s])`` (higher is better; > 0 beats scratch);
- ``win_rate[t, s]``       share of test images on which the transfer's loss is below scratch's
  (Taskonomy's per-image win rate against the from-scratch network).

Matrices are task-by-task (rows = targets, columns = sources, in the bank's task order); the diagonal
and the rows of source-only tasks are NaN. Each (t, s) result is a checksummed cache entry, so an
interrupted run resumes at the first missing pair.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .cache import load_json_entry, save_json_entry
from .networks import Encoder, TaskNet, make_head
from .tasks import Task, get_task
from .train import BankConfig, SceneData, evaluate, fit, task_seed


@torch.no_grad()
def encode(encoder: Encoder, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Representation of inputs x (N×3×S×S) under a frozen encoder: float32 N×8×S/4×S/4."""
    return np.concatenate([encoder(torch.from_numpy(x[i:i + batch_size])).numpy()
                           for i in range(0, len(x), batch_size)])


def _pair_path(cache_root: Path, target: str, source: str) -> Path:
    return cache_root / "affinity" / target / f"{source}.json"


def transfer_readout(cfg: BankConfig, target: Task, source: str, encoder: Encoder, data: SceneData,
                     feats: dict) -> dict:
    """Train ``target``'s head on ``source``'s frozen representation of the limited set; test it."""
    for split in ("limited", "test"):
        k = (source, target.input, split)
        if k not in feats:
            feats[k] = encode(encoder, data.xy(target, split)[0])
    z_lim, z_test = feats[(source, target.input, "limited")], feats[(source, target.input, "test")]
    y_lim, y_test = data.xy(target, "limited")[1], data.xy(target, "test")[1]
    torch.manual_seed(task_seed(cfg, "readout", target.name, source))
    head = make_head(target, cfg.image_size, cfg.width)
    t0 = time.perf_counter()
    fit(head.parameters(), head, target, z_lim, y_lim, epochs=cfg.readout_epochs, batch_size=cfg.batch_size,
        lr=cfg.lr, seed=task_seed(cfg, "order", target.name, source))
    seconds = time.perf_counter() - t0
    head.eval()
    ev = evaluate(head, target, z_test, y_test)
    return {"loss": ev["loss"].tolist(), "accuracy": ev.get("accuracy", np.array([])).tolist(), "seconds": seconds}


def scratch_baseline(cfg: BankConfig, target: Task, data: SceneData) -> dict:
    """A from-scratch network (encoder + head) trained on the same limited set, tested on the test split."""
    torch.manual_seed(task_seed(cfg, "scratch", target.name))
    net = TaskNet(target, cfg.image_size, cfg.width)
    x, y = data.xy(target, "limited")
    t0 = time.perf_counter()
    fit(net.parameters(), net, target, x, y, epochs=cfg.readout_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        seed=task_seed(cfg, "order", target.name, "scratch"))
    seconds = time.perf_counter() - t0
    net.eval()
    ev = evaluate(net, target, *data.xy(target, "test"))
    return {"loss": ev["loss"].tolist(), "accuracy": ev.get("accuracy", np.array([])).tolist(), "seconds": seconds}


def measure_affinities(cfg: BankConfig, cache_root: Path, encoders: dict[str, Encoder], data: SceneData, *,
                       progress: Callable[[str], None] | None = None, only_targets=None) -> dict:
    """All (target, source) transfers and scratch baselines, from cache where intact; returns the matrices.

    ``only_targets``: measure these targets only (their rows; every other row stays NaN).

    Returns ``{"tasks", "targets", "transfer_loss", "affinity", "win_rate", "transfer_accuracy",
    "scratch_loss", "scratch_accuracy", "seconds"}``: T×T float64 matrices (rows targets, columns sources),
    per-task vectors, and the summed training seconds (cached entries count with their recorded time).
    """
    names = list(cfg.tasks)
    t_count = len(names)
    key = cfg.key()
    nan = np.full((t_count, t_count), np.nan)
    loss, aff, win, acc = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    scratch_loss, scratch_acc = np.full(t_count, np.nan), np.full(t_count, np.nan)
    seconds = 0.0
    feats: dict = {}
    targets = [n for n in names if get_task(n).is_target]
    for ti, tname in enumerate(names):
        target = get_task(tname)
        if not target.is_target or (only_targets is not None and tname not in only_targets):
            continue
        path = _pair_path(cache_root, tname, "_scratch")
        scratch = load_json_entry(path, key)
        if scratch is None:
            if progress:
                progress(f"ground truth: {tname} from scratch")
            scratch = scratch_baseline(cfg, target, data)
            save_json_entry(path, key, scratch)
        seconds += scratch["seconds"]
        s_loss = np.asarray(scratch["loss"])
        scratch_loss[ti] = s_loss.mean()
        if scratch["accuracy"]:
            scratch_acc[ti] = float(np.mean(scratch["accuracy"]))
        for si, sname in enumerate(names):
            if si == ti:
                continue
            path = _pair_path(cache_root, tname, sname)
            pair = load_json_entry(path, key)
            if pair is None:
                if progress:
                    progress(f"ground truth: {sname} -> {tname}")
                pair = transfer_readout(cfg, target, sname, encoders[sname], data, feats)
                save_json_entry(path, key, pair)
            seconds += pair["seconds"]
            p_loss = np.asarray(pair["loss"])
            loss[ti, si] = p_loss.mean()
            aff[ti, si] = np.log(s_loss.mean() / p_loss.mean())
            win[ti, si] = float(np.mean(p_loss < s_loss))
            if pair["accuracy"]:
                acc[ti, si] = float(np.mean(pair["accuracy"]))
    return {"tasks": names, "targets": targets, "transfer_loss": loss, "affinity": aff, "win_rate": win,
            "transfer_accuracy": acc, "scratch_loss": scratch_loss, "scratch_accuracy": scratch_acc,
            "seconds": seconds}


def write_affinity_csvs(result: dict, out: Path) -> dict[str, str]:
    """Write the target-by-source matrices (square, NaN rows for source-only tasks) and the scratch losses
    as CSV into ``out``; returns {table name: file name}."""
    from ...io.files import write_csv
    from ...evaluation.rank_quality import write_matrix_csv

    names = result["tasks"]
    files = {}
    for key in ("affinity", "win_rate", "transfer_loss", "transfer_accuracy"):
        write_matrix_csv(out / f"gt_{key}.csv", names, result[key])
        files[f"gt_{key}"] = f"gt_{key}.csv"
    rows = [{"task": n, "scratch_loss": result["scratch_loss"][i], "scratch_accuracy": result["scratch_accuracy"][i]}
            for i, n in enumerate(names) if n in result["targets"]]
    write_csv(out / "gt_scratch.csv", rows)
    files["gt_scratch"] = "gt_scratch.csv"
    return files
