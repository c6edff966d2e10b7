"""Training loops: a domain model from scratch (`train_domain`) and layer-wise transfer (`transfer_layers`).

Determinism: every epoch reseeds torch from (seed, epoch) and shuffles with its own generator, so a run resumed
after an interruption reproduces the uninterrupted run, and each transfer depth starts from the same fresh init.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ...io.files import atomic_path, ensure_dir, read_csv, read_json, seed_everything, write_csv, write_json
from ...errors import DeparaError
from ...extraction.folders import check_same_classes, list_split, load_images
from ..data.shrink import fraction_ratio
from .models import (MODEL_INFO, ModelInfo, TransferUnit, build_model, load_checkpoint, load_state_checked,
                     save_info, save_weights, transfer_units, unit_state_keys)

RESUME_FILE = "resume.pt"
LOG_FILE = "log.csv"
TRANSFER_CSV = "transfer.csv"
SCRATCH_MEAN = [0.5, 0.5, 0.5]
SCRATCH_STD = [0.5, 0.5, 0.5]


# --------------------------------------------------------------------------------------------------- data
@dataclass
class ImageSet:
    """A split in memory: ``images`` N×3×H×W uint8, ``labels`` N int64, ``classes`` (index → name)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_split(domain_root: Path, split: str, size: int, classes: Sequence[str] | None = None) -> ImageSet:
    """Decode one split of a split domain folder into memory (class order = sorted names, or ``classes``)."""
    by_class = list_split(domain_root, split)
    if classes is not None:
        check_same_classes(dict.fromkeys(classes), by_class, "the model", f"{domain_root}/{split}")
    names = list(classes) if classes is not None else sorted(by_class)
    paths, labels = [], []
    for i, name in enumerate(names):
        paths += by_class[name]
        labels += [i] * len(by_class[name])
    images = torch.from_numpy(load_images(paths, size)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), names)


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N×3×H×W → float normalised by per-channel mean/std (of [0, 1] pixel values)."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def _augment(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random shift by up to ``pad`` pixels (reflect padding + crop): cheap, label-preserving for digits/objects."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


# --------------------------------------------------------------------------------------------------- loops
def evaluate(model: nn.Module, data: ImageSet, mean, std, batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``data``, in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = normalise(data.images[i:i + batch_size], mean, std)
            y = data.labels[i:i + batch_size]
            logits = model(x)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    n = max(1, len(data))
    return loss_sum / n, correct / n


def set_train_mode(model: nn.Module, frozen_modules: Sequence[str] = ()) -> None:
    """Train mode, except frozen batch-norm layers stay in eval mode (their running stats are transferred)."""
    model.train()
    for name in frozen_modules:
        m = model.get_submodule(name)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing by epoch index (0-based), a pure function so resuming needs no scheduler state."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * epoch / max(1, epochs)))


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: ImageSet, mean, std, *,
                    batch_size: int, seed: int, epoch: int, augment: bool, frozen_modules: Sequence[str] = (),
                    callback: Callable[[int, int], None] | None = None) -> tuple[float, float]:
    """One epoch of SGD; returns (mean loss, accuracy) over the epoch's batches."""
    torch.manual_seed(seed * 100_003 + epoch)  # dropout masks of this epoch
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(data), generator=gen)
    set_train_mode(model, frozen_modules)
    loss_sum, correct, seen = 0.0, 0, 0
    for step, i in enumerate(range(0, len(data), batch_size)):
        idx = order[i:i + batch_size]
        x = normalise(data.images[idx], mean, std)
        if augment:
            x = _augment(x, gen)
        y = data.labels[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(idx)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(idx)
        if callback is not None:
            callback(epoch, step)
    return loss_sum / max(1, seen), correct / max(1, seen)


def make_optimizer(params, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with Nesterov momentum, as in the original experiment."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)


# --------------------------------------------------------------------------------------------------- domain model
def train_domain(data: str | os.PathLike, domain: str, out: str | os.PathLike, *, arch: str = "narrow_vgg11_bn",
                 width: float = 0.125, image_size: int = 32, epochs: int = 30, batch_size: int = 128,
                 lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4, augment: bool = True,
                 seed: int = 0, progress: bool = True, callback: Callable[[int, int], None] | None = None) -> dict:
    """Train ``arch`` from scratch on ``data/<domain>/train``, validating on ``data/<domain>/val``.

    Writes into the run folder ``out``: ``model.json``, ``log.csv`` (one row per epoch), ``last.safetensors``,
    ``best.safetensors`` (best val accuracy) and ``resume.pt`` (weights + optimiser + epoch, loaded with
    ``weights_only=True``). Calling again with the same ``out`` resumes after the last finished epoch (or returns
    at once when ``epochs`` are done); a run folder of another architecture or dataset is refused.
    Returns ``{"run", "epochs", "best_epoch", "best_val_acc", "last_val_acc"}``.
    """
    data = Path(data)
    domain_root = data / domain
    if not domain_root.is_dir():
        raise DeparaError(f"{domain_root}: domain folder not found (expected DATA/<domain>/train, from `depara data split`)")
    if epochs < 1:
        raise DeparaError(f"epochs {epochs}: expected at least 1")
    out = ensure_dir(out)
    train = load_split(domain_root, "train", image_size)
    val = load_split(domain_root, "val", image_size, classes=train.classes)
    info = ModelInfo(arch=arch, classes=train.classes, width=width if arch.startswith("narrow_") else 1.0,
                     image_size=image_size, mean=SCRATCH_MEAN, std=SCRATCH_STD, domain=domain)
    config = {"data": str(data.resolve()), "domain": domain, "arch": arch, "width": info.width,
              "image_size": image_size, "batch_size": batch_size, "lr": lr, "momentum": momentum,
              "weight_decay": weight_decay, "augment": augment, "seed": seed}
    seed_everything(seed)
    model = build_model(arch, len(train.classes), width=info.width)
    optimizer = make_optimizer(model.parameters(), lr, momentum, weight_decay)
    start, best_acc, best_epoch, rows = 0, -1.0, 0, []
    resume_path = out / RESUME_FILE
    if resume_path.is_file():
        start, best_acc, best_epoch, rows = _resume(out, config, info, model, optimizer)
    else:
        if (out / MODEL_INFO).exists():
            raise DeparaError(f"{out}: holds a model but no {RESUME_FILE}; choose a new out folder")
        save_info(info, out)
        write_json(out / "train_config.json", config)
    iterator = range(start, epochs)
    if progress and start < epochs:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"train {arch} on {domain}", unit="epoch", initial=start, total=epochs)
    for epoch in iterator:
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(lr, epoch, epochs)
        tr_loss, tr_acc = train_one_epoch(model, optimizer, train, info.mean, info.std, batch_size=batch_size,
                                          seed=seed, epoch=epoch, augment=augment, callback=callback)
        val_loss, val_acc = evaluate(model, val, info.mean, info.std)
        rows.append({"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": tr_loss,
                     "train_acc": tr_acc, "val_loss": val_loss, "val_acc": val_acc,
                     "seconds": time.perf_counter() - t0})
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch + 1
            save_weights(model, out / "best.safetensors")
        save_weights(model, out / "last.safetensors")
        write_csv(out / LOG_FILE, rows)
        with atomic_path(resume_path, "resume state") as tmp:
            torch.save({"epoch": epoch + 1, "epochs": epochs, "best_val_acc": best_acc, "best_epoch": best_epoch,
                        "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
    last_acc = float(rows[-1]["val_acc"]) if rows else float("nan")
    return {"run": str(out), "epochs": epochs, "best_epoch": best_epoch, "best_val_acc": best_acc,
            "last_val_acc": last_acc}


def _resume(out: Path, config: dict, info: ModelInfo, model: nn.Module, optimizer) -> tuple[int, float, int, list]:
    saved = read_json(out / "train_config.json") if (out / "train_config.json").is_file() else {}
    for key in ("arch", "width", "domain", "image_size", "seed"):
        if saved.get(key) != config[key]:
            raise DeparaError(f"{out}: holds a run with {key}={saved.get(key)!r}, not {config[key]!r} "
                              f"(resume only the same run; choose a new out folder)")
    saved_info = read_json(out / MODEL_INFO)
    if saved_info.get("classes") != info.classes:
        raise DeparaError(f"{out}: holds a run trained on other classes than {config['data']}/{config['domain']}")
    try:
        state = torch.load(out / RESUME_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DeparaError(f"{out / RESUME_FILE}: unreadable resume state ({type(exc).__name__}); remove it") from None
    load_state_checked(model, state["model"], str(out / RESUME_FILE), config["arch"])
    optimizer.load_state_dict(state["optimizer"])
    epoch = int(state["epoch"])
    rows = [r for r in read_csv(out / LOG_FILE) if int(r["epoch"]) <= epoch] if (out / LOG_FILE).is_file() else []
    return epoch, float(state["best_val_acc"]), int(state["best_epoch"]), rows


# --------------------------------------------------------------------------------------------------- sources
def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision's weights API caches ``arch``'s ImageNet weights (``$TORCH_HOME/hub/checkpoints/…``)."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_imagenet_source(arch: str = "vgg19_bn") -> tuple[nn.Module, ModelInfo]:
    """torchvision's ImageNet-pretrained VGG-bn through its weights API (``VGG19_BN_Weights.DEFAULT`` …).

    Offline: the weights must already be in the torch hub cache; nothing is downloaded.
    """
    from torchvision.models import get_model_weights

    if arch not in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
        raise DeparaError(f"arch '{arch}': an ImageNet source must be one of vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn")
    weights = get_model_weights(arch).DEFAULT
    path = imagenet_weights_path(arch)
    if not path.is_file():
        raise DeparaError(f"ImageNet weights of {arch} not in the torch hub cache ({path}); fetch them once online "
                          f"with torchvision.models.{arch}(weights='DEFAULT')")
    try:
        state = weights.get_state_dict(progress=False, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DeparaError(f"{path}: unreadable ImageNet weights ({type(exc).__name__})") from None
    model = build_model(arch, len(weights.meta["categories"]))
    load_state_checked(model, state, str(path), arch)
    model.eval()
    tf = weights.transforms()
    info = ModelInfo(arch=arch, classes=list(weights.meta["categories"]), width=1.0, image_size=224,
                     mean=list(tf.mean), std=list(tf.std), domain="imagenet")
    return model, info


def load_source(source: str | os.PathLike, arch: str = "vgg19_bn") -> tuple[nn.Module, ModelInfo]:
    """``"imagenet"`` (torchvision weights of ``arch``) or a `depara train` run folder / checkpoint."""
    if str(source) == "imagenet":
        return load_imagenet_source(arch)
    return load_checkpoint(source)


# --------------------------------------------------------------------------------------------------- transfer
def copy_units(source: nn.Module, target: nn.Module, units: Sequence[TransferUnit]) -> list[str]:
    """Copy the parameters AND batch-norm buffers of ``units`` from ``source`` into ``target``; freeze them.

    Returns the names of the copied modules. Raises a DeparaError if a unit's shapes differ.
    """
    src_state = source.state_dict()
    tgt_state = target.state_dict()
    update = {}
    for unit in units:
        for key in unit_state_keys(target, unit):
            if key not in src_state or src_state[key].shape != tgt_state[key].shape:
                raise DeparaError(f"source layer {key}: missing or of another shape than the target model's "
                                  f"(source and target must be the same architecture)")
            update[key] = src_state[key]
    target.load_state_dict(update, strict=False)
    names = [m for unit in units for m in unit.modules]
    for name in names:
        for p in target.get_submodule(name).parameters():
            p.requires_grad_(False)
    return names


def fresh_transfer_model(source: nn.Module, info: ModelInfo, num_classes: int, depth: int, seed: int
                         ) -> tuple[nn.Module, list[str]]:
    """A FRESH model (init seeded by ``seed``, identical for every depth) with units 1..depth copied from
    ``source`` with their batch norm and frozen. Returns (model, frozen module names)."""
    seed_everything(seed)
    model = build_model(info.arch, num_classes, width=info.width)
    units = transfer_units(model)
    if not 0 <= depth < len(units):
        raise DeparaError(f"depth {depth}: expected 0..{len(units) - 1} for {info.arch} (the last layer is never copied)")
    frozen = copy_units(source, model, units[:depth]) if depth else []
    return model, frozen


def transfer_layers(data: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, *,
                    target: str = "real", fraction: str = "tenth", arch: str = "vgg19_bn",
                    depths: Sequence[int] | None = None, image_size: int | None = None, epochs: int = 30,
                    batch_size: int = 128, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                    augment: bool = True, eval_every: int = 1, seed: int = 0, progress: bool = True) -> list[dict]:
    """Layer-wise transfer: for each depth k, a fresh model with layers 1..k copied from ``source`` (with their
    batch norm) and frozen, the rest fine-tuned on ``data/<target>_<fraction>/train``.

    Val accuracy is measured every ``eval_every`` epochs (and at the last); the test accuracy reported is that of
    the epoch with the best val accuracy. Rows ``{depth, layer, kind, trainable_params, best_epoch, val_acc,
    test_acc, final_test_acc, seconds}`` are written to ``out/transfer.csv`` after every depth, so an interrupted
    run resumes at the next depth. ``depths`` default: every layer but the last (1..L−1); 0 = no transfer.
    """
    data, out = Path(data), ensure_dir(out)
    fraction_ratio(fraction)
    target_root = data / f"{target}_{fraction}"
    if not target_root.is_dir():
        raise DeparaError(f"{target_root}: target fraction folder missing (make it with "
                          f"`depara data shrink {data / target} --out {data} --ratio {fraction_ratio(fraction)}`)")
    src_model, info = load_source(source, arch)
    size = int(image_size or info.image_size)
    train = load_split(target_root, "train", size)
    if info.domain != "imagenet":
        check_same_classes(dict.fromkeys(info.classes), dict.fromkeys(train.classes), f"source {source}",
                           f"target {target_root}")
    val = load_split(target_root, "val", size, classes=train.classes)
    test = load_split(target_root, "test", size, classes=train.classes)
    n_units = len(transfer_units(src_model))
    depths = list(range(1, n_units)) if depths is None else [int(d) for d in depths]
    settings = {"source": str(source), "source_arch": info.arch, "data": str(target_root.resolve()),
                "image_size": size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
                "weight_decay": weight_decay, "augment": augment, "eval_every": eval_every, "seed": seed}
    rows = _previous_rows(out, settings)
    done = {int(r["depth"]) for r in rows}
    todo = [d for d in depths if d not in done]
    iterator = todo
    if progress and todo:
        from tqdm import tqdm

        iterator = tqdm(todo, desc=f"transfer {Path(str(source)).name}->{target}_{fraction}", unit="depth")
    for depth in iterator:
        t0 = time.perf_counter()
        model, frozen = fresh_transfer_model(src_model, info, len(train.classes), depth, seed)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(trainable, lr, momentum, weight_decay)
        best = (-1.0, 0, float("nan"))  # val acc, epoch, test acc
        for epoch in range(epochs):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(lr, epoch, epochs)
            train_one_epoch(model, optimizer, train, info.mean, info.std, batch_size=batch_size, seed=seed,
                            epoch=epoch, augment=augment, frozen_modules=frozen)
            if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
                _, val_acc = evaluate(model, val, info.mean, info.std)
                if val_acc > best[0]:
                    best = (val_acc, epoch + 1, evaluate(model, test, info.mean, info.std)[1])
        final_test = evaluate(model, test, info.mean, info.std)[1]
        unit = transfer_units(model)[depth - 1] if depth else None
        rows.append({"depth": depth, "layer": unit.output if unit else "", "kind": unit.kind if unit else "none",
                     "trainable_params": sum(p.numel() for p in trainable), "best_epoch": best[1],
                     "val_acc": best[0], "test_acc": best[2], "final_test_acc": final_test,
                     "seconds": time.perf_counter() - t0})
        rows.sort(key=lambda r: int(r["depth"]))
        write_csv(out / TRANSFER_CSV, rows)
    return rows


def write_transfer_results(rows: Sequence[dict], out: str | os.PathLike, *, title: str,
                           settings: dict | None = None) -> str:
    """Complete a ``transfer`` results folder written by :func:`transfer_layers`: ``transfer.png`` (accuracy per
    depth) and ``manifest.json``. Returns the one-line summary (the most accurate depth)."""
    from ...report.plots.layers import plot_transfer_accuracy
    from ...report.manifest import write_manifest

    if not rows:
        raise DeparaError("rows: no transfer rows to report")
    plot_transfer_accuracy(rows, Path(out) / "transfer.png", title=title)
    best = max(rows, key=lambda r: float(r["test_acc"]))
    summary = f"best depth #{best['depth']} ({best['layer']}): test accuracy {100 * float(best['test_acc']):.1f}%"
    write_manifest(out, "transfer", title=f"Layer-wise transfer {title}", summary=summary,
                   settings=dict(settings or {}), tables={"transfer": TRANSFER_CSV},
                   figures={"transfer": "transfer.png"})
    return summary


def _previous_rows(out: Path, settings: dict) -> list[dict]:
    """Rows of an earlier run with identical settings (resume); otherwise start afresh."""
    settings_path = out / "transfer.json"
    if settings_path.is_file() and (out / TRANSFER_CSV).is_file() and read_json(settings_path) == settings:
        return read_csv(out / TRANSFER_CSV)
    write_json(settings_path, settings)
    if (out / TRANSFER_CSV).exists():
        (out / TRANSFER_CSV).unlink()
    return []
