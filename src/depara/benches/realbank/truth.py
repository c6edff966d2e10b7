"""Ground truth of the real-image bank: the measured accuracy of each source on each target, two protocols.

For every (target, seed, source), on the seed's stratified split of the target pool (:func:`~.data.make_split`):

- **linear probe**: the frozen source's pooled representation (``stage3``, global average pool) of the train
  images, standardised, fits a multinomial logistic regression (scikit-learn, L2, C = 1); the truth is its
  accuracy on the test images;
- **fine-tuning**: the upper part of the network (``stage3``) and a fresh head (BatchNorm-standardised linear
  layer) are trained together (Adam, lr 1e-3 for stage3 and 1e-2 for the head, batch 32, a fixed budget of
  ``ft_steps`` steps, stage3's BatchNorm statistics frozen), on top of the frozen lower stages (their output is
  computed once per (target, source)); the truth is the test accuracy.

Each measurement is one checksummed JSON cache entry keyed by everything that changes it; a corrupt entry is
re-measured. The seed changes the split, the head's initialisation and the batch order.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..taskbank.cache import fingerprint, load_json_entry, save_json_entry
from .models import Net


@dataclass(frozen=True)
class TruthConfig:
    """Settings of the ground-truth measurements."""

    ft_steps: int = 40
    ft_lr: float = 1e-2  # the fresh head's; the transferred stage3 gets ft_lr / 10
    ft_batch: int = 32
    lp_c: float = 1.0

    def key(self) -> dict:
        return {"ft_steps": self.ft_steps, "ft_lr": self.ft_lr, "ft_batch": self.ft_batch, "lp_c": self.lp_c, "v": 4}


def linear_probe(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                 c: float = 1.0) -> float:
    """Test accuracy of a standardised L2 logistic regression fitted on the train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        return float(np.mean(y_test == y_train[0]))
    sc = StandardScaler().fit(f_train)
    clf = LogisticRegression(C=c, max_iter=300).fit(sc.transform(f_train), y_train)
    return float((clf.predict(sc.transform(f_test)) == y_test).mean())


def train_and_test(upper: torch.nn.Module, head: torch.nn.Module, h_train: torch.Tensor, y_train: np.ndarray,
                   h_test: torch.Tensor, y_test: np.ndarray, *, steps: int, lr_upper: float, lr_head: float,
                   batch: int, seed: int) -> float:
    """Fine-tune ``upper`` and ``head`` together on ``head(upper(h))`` and return the test accuracy — the one
    fine-tuning loop of the real-image bank and of the procedural classification targets
    (:mod:`depara.benches.taskbank.classify`).

    Adam with ``lr_upper`` / ``lr_head``, cross-entropy, ``steps`` steps on batches of ``min(batch, N)`` taken in
    order from a permutation drawn by ``default_rng([seed, 99])`` (a new permutation when it runs out).
    ``h_train``/``h_test``: the frozen lower layers' output of the train/test images (computed once by the caller).
    """
    for p in upper.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam([{"params": list(upper.parameters()), "lr": lr_upper},
                            {"params": list(head.parameters()), "lr": lr_head}])
    rng = np.random.default_rng([seed, 99])
    yt = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    n = len(yt)
    bs = min(batch, n)
    # BatchNorm statistics of the transferred part stay frozen (eval mode; their affine weights still train): with
    # batches of 20-32 images, batch statistics would replace the source's and wreck its features.
    upper.eval()
    head.train()
    order, pos = rng.permutation(n), 0
    with torch.enable_grad():
        for _ in range(steps):
            if pos + bs > n:
                order, pos = rng.permutation(n), 0
            idx = torch.from_numpy(order[pos:pos + bs])
            pos += bs
            loss = F.cross_entropy(head(upper(h_train[idx])), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        pred = torch.cat([head(upper(h_test[i:i + 256])) for i in range(0, len(h_test), 256)]).argmax(1)
    return float((pred.numpy() == np.asarray(y_test)).mean())


def fine_tune(net: Net, h_train: torch.Tensor, y_train: np.ndarray, h_test: torch.Tensor, y_test: np.ndarray, *,
              n_classes: int, seed: int, cfg: TruthConfig) -> float:
    """Test accuracy after fine-tuning ``stage3`` + a fresh head for ``cfg.ft_steps`` steps
    (:func:`train_and_test`; ``stage3`` at ``cfg.ft_lr / 10``, the head at ``cfg.ft_lr``).

    ``h_train``/``h_test``: the frozen lower stages' output (N×C×8×8) of the train/test images.
    """
    model = copy.deepcopy(net)
    model.reset_head(n_classes, seed)
    return train_and_test(model.body[-1], model.head, h_train, y_train, h_test, y_test, steps=cfg.ft_steps,
                          lr_upper=cfg.ft_lr / 10, lr_head=cfg.ft_lr, batch=cfg.ft_batch, seed=seed)


@torch.no_grad()
def lower_and_pooled(net: Net, x: np.ndarray, batch_size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """(lower stages' output N×C×8×8, pooled representation N×4w float64) of images ``x``, one forward pass."""
    lower, upper = net.body[:-1], net.body[-1]
    net.eval()
    hs, fs = [], []
    for i in range(0, len(x), batch_size):
        h = lower(torch.from_numpy(x[i:i + batch_size]))
        hs.append(h)
        fs.append(upper(h).mean(dim=(2, 3)))
    return torch.cat(hs), torch.cat(fs).double().numpy()


def measure_pair(net: Net, source_key: str, target: str, pool, splits, seeds, *, cfg: TruthConfig,
                 cache_root: Path) -> dict:
    """Both protocols for one (target, source) on every seed's split: ``{"linear_probe": [acc per seed],
    "fine_tune": [...], "seconds_lp", "seconds_ft", "seconds_forward", "cached"}``.

    The source's lower stages run once over the union of the splits' images; each seed then fits a linear probe and
    fine-tunes. One cache entry per (target, source, seeds, settings).
    """
    key = fingerprint({"source": source_key, "target": target, "seeds": [int(s) for s in seeds], "cfg": cfg.key(),
                       "splits": fingerprint({"i": [[sp.train.tolist(), sp.test.tolist()] for sp in splits]}),
                       "pool": len(pool.y)})
    path = cache_root / "truth" / target / f"{source_key.replace(':', '_')}-{key}.json"
    hit = load_json_entry(path, key)
    if hit is not None:
        return {**hit, "cached": True}
    used = np.unique(np.concatenate([np.r_[sp.train, sp.test] for sp in splits]))
    where = np.full(len(pool.y), -1)
    where[used] = np.arange(len(used))
    t0 = time.perf_counter()
    h, f = lower_and_pooled(net, pool.x[used])
    out = {"linear_probe": [], "fine_tune": [], "seconds_forward": time.perf_counter() - t0,
           "seconds_lp": 0.0, "seconds_ft": 0.0}
    for seed, sp in zip(seeds, splits):
        tr, te = where[sp.train], where[sp.test]
        t0 = time.perf_counter()
        out["linear_probe"].append(linear_probe(f[tr], pool.y[sp.train], f[te], pool.y[sp.test], cfg.lp_c))
        t1 = time.perf_counter()
        ft_seed = int(fingerprint({"k": key, "seed": int(seed)}), 16) % 2**31
        out["fine_tune"].append(fine_tune(net, h[torch.from_numpy(tr)], pool.y[sp.train], h[torch.from_numpy(te)],
                                          pool.y[sp.test], n_classes=pool.n_classes, seed=ft_seed, cfg=cfg))
        out["seconds_lp"] += t1 - t0
        out["seconds_ft"] += time.perf_counter() - t1
    save_json_entry(path, key, out)
    return {**out, "cached": False}
