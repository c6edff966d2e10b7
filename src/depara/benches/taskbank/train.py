"""Training the task networks of the bank, with cached checkpoints so a run resumes where it stopped.

Splits (scene indices of one seeded stream, disjoint): ``train`` (task networks), ``test`` (every
measured loss), ``limited`` (the small target training set of the ground-truth transfers) and
``probe`` (the in-domain probe images of the graphs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DeparaError
from .cache import fingerprint, load_tensors_entry, save_tensors_entry
from .networks import Encoder, TaskNet
from .scenes import SceneBatch, generate_scenes
from .tasks import TASK_NAMES, Task, get_task, resolve_tasks, task_inputs

TINY_TASKS = ("autoencoding", "colorization", "edge2d", "depth", "normal", "segment2d", "count", "light")
#: ``depara demo``'s bank: the tiny bank plus the first four other tasks in bank order (denoising, inpainting, edge3d,
#: reshading): 12 tasks, 10 targets × 11 sources, enough candidates for a top-5 relevant set (random P@5 = 5/11),
#: 110 transfers instead of the default's 182.
DEMO_TASKS = tuple(t for t in TASK_NAMES if t in TINY_TASKS + tuple(n for n in TASK_NAMES if n not in TINY_TASKS)[:4])


@dataclass(frozen=True)
class BankConfig:
    """Every setting of a task-bank run (its fingerprint names the cache folder)."""

    scale: str
    tasks: tuple[str, ...]
    image_size: int = 32
    width: int = 16
    n_train: int = 1200
    n_test: int = 300
    n_limited: int = 200
    n_probe: int = 200
    epochs: int = 10
    readout_epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    relevant: int = 5
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        """Fingerprint of the settings that change trained weights or measured losses (not the evaluation's)."""
        d = asdict(self)
        for k in ("scale", "n_probe", "relevant", "extra"):
            d.pop(k)
        return fingerprint(d)

    def splits(self) -> dict[str, tuple[int, int]]:
        """name -> (start index, count) in the scene stream."""
        starts = np.cumsum([0, self.n_train, self.n_test, self.n_limited])
        return {"train": (int(starts[0]), self.n_train), "test": (int(starts[1]), self.n_test),
                "limited": (int(starts[2]), self.n_limited), "probe": (int(starts[3]), self.n_probe)}


SCALES: dict[str, dict] = {
    "tiny": dict(tasks=TINY_TASKS, width=8, n_train=192, n_test=64, n_limited=64, n_probe=48, epochs=3,
                 readout_epochs=8, batch_size=32, relevant=3),
    # depara demo: ~1 min on one thread; 90 Adam steps per task network, 40 per readout head
    "demo": dict(tasks=DEMO_TASKS, width=16, n_train=480, n_test=200, n_limited=128, n_probe=100, epochs=6,
                 readout_epochs=10, batch_size=32, relevant=5),
    "default": dict(tasks=TASK_NAMES, width=16, n_train=1200, n_test=300, n_limited=200, n_probe=200, epochs=10,
                    readout_epochs=30, batch_size=32, relevant=5),
}


def make_config(scale: str, *, seed: int = 0, **overrides) -> BankConfig:
    """The :class:`BankConfig` of a named scale; validates the relevant-set size against the bank."""
    if scale not in SCALES:
        raise DeparaError(f"scale {scale!r}: expected one of {', '.join(SCALES)}")
    cfg = BankConfig(scale=scale, seed=int(seed), **{**SCALES[scale], **overrides})
    tasks = resolve_tasks(cfg.tasks)
    n_targets = sum(t.is_target for t in tasks)
    if n_targets < 1:
        raise DeparaError(f"scale {scale}: no task can be a target")
    if len(tasks) - 1 <= cfg.relevant:
        raise DeparaError(f"scale {scale}: {len(tasks)} tasks give {len(tasks) - 1} candidate sources per target, "
                          f"need more than the relevant-set size {cfg.relevant}")
    for name in ("n_train", "n_test", "n_limited"):
        if getattr(cfg, name) < cfg.batch_size:
            raise DeparaError(f"scale {scale}: {name}={getattr(cfg, name)} is smaller than batch_size={cfg.batch_size}")
    if cfg.n_probe <= cfg.relevant + 2:
        raise DeparaError(f"scale {scale}: n_probe={cfg.n_probe} is too few probe images")
    return cfg


class SceneData:
    """The rendered scenes of a config, split, with per-task inputs/targets computed lazily and kept."""

    def __init__(self, cfg: BankConfig):
        self.cfg = cfg
        self._scenes: dict[str, SceneBatch] = {}
        self._xy: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def scenes(self, split: str) -> SceneBatch:
        if split not in self._scenes:
            start, n = self.cfg.splits()[split]
            self._scenes[split] = generate_scenes(n, size=self.cfg.image_size, seed=self.cfg.seed, start=start)
        return self._scenes[split]

    def xy(self, task: Task, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs N×3×S×S in [-1, 1], targets) of ``task`` on ``split``."""
        k = (task.name, split)
        if k not in self._xy:
            s = self.scenes(split)
            start = self.cfg.splits()[split][0]
            self._xy[k] = (task_inputs(task, s, seed=self.cfg.seed, start=start), task.targets(s))
        return self._xy[k]

    def probe_tensor(self) -> torch.Tensor:
        """The in-domain probe images, clean, N×3×S×S in [-1, 1]."""
        return torch.from_numpy(task_inputs(get_task("autoencoding"), self.scenes("probe")))


# ----------------------------------------------------------------------------------------------- losses
def per_sample_loss(task: Task, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Loss of each sample (length-N tensor) under the task's loss."""
    if task.loss == "mse":
        err = F.mse_loss(pred, target, reduction="none")
    elif task.loss == "bce":
        err = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    else:
        err = F.cross_entropy(pred, target, reduction="none")
    return err.reshape(err.shape[0], -1).mean(dim=1)


def accuracy(task: Task, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample accuracy for classification tasks (pixel accuracy for dense ones)."""
    correct = (pred.argmax(dim=1) == target).float()
    return correct.reshape(correct.shape[0], -1).mean(dim=1)


def fit(params, forward: Callable[[torch.Tensor], torch.Tensor], task: Task, x: np.ndarray, y: np.ndarray, *,
        epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """Adam on the task loss over (x, y) for ``epochs``; returns the last epoch's mean training loss."""
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(x)
    last = float("nan")
    for _ in range(int(epochs)):
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = per_sample_loss(task, forward(xt[idx]), yt[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        last = total / n
    return last


@torch.no_grad()
def evaluate(forward: Callable[[torch.Tensor], torch.Tensor], task: Task, x: np.ndarray, y: np.ndarray,
             batch_size: int = 128) -> dict[str, np.ndarray]:
    """Per-sample test loss (and accuracy for classification tasks) as float64 arrays of length N."""
    losses, accs = [], []
    for i in range(0, len(x), batch_size):
        xb, yb = torch.from_numpy(x[i:i + batch_size]), torch.from_numpy(y[i:i + batch_size])
        pred = forward(xb)
        losses.append(per_sample_loss(task, pred, yb))
        if task.is_classification:
            accs.append(accuracy(task, pred, yb))
    out = {"loss": torch.cat(losses).double().numpy()}
    if accs:
        out["accuracy"] = torch.cat(accs).double().numpy()
    return out


def task_seed(cfg: BankConfig, *names: str) -> int:
    """A seed derived from the run seed and names (stable across runs and Python processes)."""
    return int(fingerprint({"seed": cfg.seed, "names": names}), 16) % (2**31)


# ----------------------------------------------------------------------------------------- task networks
def encoder_path(cache_root: Path, task: str) -> Path:
    return cache_root / "encoders" / f"{task}.safetensors"


def train_task_network(cfg: BankConfig, task: Task, data: SceneData) -> tuple[TaskNet, dict]:
    """Train ``task``'s network on the train split; returns the net and info (losses, seconds)."""
    torch.manual_seed(task_seed(cfg, "net", task.name))
    net = TaskNet(task, cfg.image_size, cfg.width)
    x, y = data.xy(task, "train")
    t0 = time.perf_counter()
    train_loss = fit(net.parameters(), net, task, x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                     seed=task_seed(cfg, "order", task.name))
    seconds = time.perf_counter() - t0
    net.eval()
    xt, yt = data.xy(task, "test")
    ev = evaluate(net, task, xt, yt)
    info = {"task": task.name, "train_loss": train_loss, "test_loss": float(ev["loss"].mean()),
            "seconds": seconds}
    if "accuracy" in ev:
        info["test_accuracy"] = float(ev["accuracy"].mean())
    return net, info


def load_or_train_encoders(cfg: BankConfig, cache_root: Path, data: SceneData, *,
                           progress: Callable[[str], None] | None = None) -> tuple[dict[str, Encoder], dict]:
    """Every task's trained encoder (from cache when intact, else trained and cached) and per-task info."""
    encoders: dict[str, Encoder] = {}
    infos: dict[str, dict] = {}
    key = cfg.key()
    for name in cfg.tasks:
        task = get_task(name)
        path = encoder_path(cache_root, name)
        entry = load_tensors_entry(path, key)
        if entry is not None:
            state, info = entry
            net = TaskNet(task, cfg.image_size, cfg.width)
            net.load_state_dict(state)
            info = {**info, "cached": True}
        else:
            if progress:
                progress(f"training task network {name}")
            net, info = train_task_network(cfg, task, data)
            save_tensors_entry(path, key, net.state_dict(), info)
            info = {**info, "cached": False}
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        encoders[name] = net.encoder
        infos[name] = info
    return encoders, infos
