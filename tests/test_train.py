"""depara.benches.layers: models, domain training (log, checkpoints, resume), layer-wise transfer and its three old bugs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from depara.io.files import read_csv
from depara.errors import DeparaError
from depara.benches.layers import (build_model, fresh_transfer_model, load_checkpoint, load_imagenet_source,
    train_domain, transfer_layers, transfer_units)
from depara.benches.layers.engine import ImageSet, train_one_epoch, make_optimizer
from depara.benches.layers.models import read_weights

from _layers_helpers import make_tiny_digits

ARCH = dict(arch="narrow_vgg11_bn", width=0.125, image_size=32)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make_tiny_digits(tmp_path_factory.mktemp("layers_train"))


@pytest.fixture(scope="module")
def source_run(tiny_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "syn"
    train_domain(tiny_data, "synthetic", run, epochs=2, batch_size=16, lr=0.05, progress=False, **ARCH)
    return run


def _state_equal(a: dict, b: dict, keys) -> bool:
    return all(torch.equal(a[k], b[k]) for k in keys)


# ------------------------------------------------------------------------------------------------ models
def test_architectures_and_units():
    m = build_model("narrow_vgg11_bn", 10, width=0.125)
    units = transfer_units(m)
    assert [u.kind for u in units] == ["conv"] * 8 + ["fc"] * 3  # VGG11: 8 conv + 3 FC
    assert units[0].modules == ("features.0", "features.1") and units[0].output == "features.2"
    assert units[-1].modules == ("classifier.6",) and units[-1].output == "classifier.6"
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert len(transfer_units(build_model("narrow_vgg19_bn", 3, width=0.0625))) == 19  # 16 conv + 3 FC, as the paper
    assert not any(isinstance(x, nn.ReLU) and x.inplace for x in m.modules())
    with pytest.raises(DeparaError, match="arch 'resnet18'"):
        build_model("resnet18", 10)


# ------------------------------------------------------------------------------------------------ training
def test_train_domain_writes_log_and_checkpoints(source_run):
    log = read_csv(source_run / "log.csv")
    assert [int(r["epoch"]) for r in log] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(log[0])
    info = json.loads((source_run / "model.json").read_text())
    assert info["arch"] == "narrow_vgg11_bn" and info["classes"] == [str(d) for d in range(10)]
    model, minfo = load_checkpoint(source_run)
    best_epoch = max(range(2), key=lambda i: float(log[i]["val_acc"]))  # first of ties, like the run
    assert not model.training and minfo.domain == "synthetic"
    state = torch.load(source_run / "resume.pt", weights_only=True)
    last = read_weights(source_run / "last.safetensors")
    assert _state_equal(state["model"], last, last)  # resume state holds the last weights
    assert float(state["best_val_acc"]) == pytest.approx(float(log[best_epoch]["val_acc"]))


def test_interrupted_training_resumes_to_the_same_weights(tiny_data, tmp_path):
    kw = dict(epochs=3, batch_size=16, lr=0.05, progress=False, **ARCH)
    train_domain(tiny_data, "real", tmp_path / "straight", **kw)

    def interrupt(epoch, step):
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_domain(tiny_data, "real", tmp_path / "resumed", callback=interrupt, **kw)
    assert [int(r["epoch"]) for r in read_csv(tmp_path / "resumed" / "log.csv")] == [1]
    train_domain(tiny_data, "real", tmp_path / "resumed", **kw)
    a = read_weights(tmp_path / "straight" / "last.safetensors")
    b = read_weights(tmp_path / "resumed" / "last.safetensors")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert [int(r["epoch"]) for r in read_csv(tmp_path / "resumed" / "log.csv")] == [1, 2, 3]
    with pytest.raises(DeparaError, match="holds a run with arch='narrow_vgg11_bn'"):
        train_domain(tiny_data, "real", tmp_path / "resumed", epochs=3, arch="narrow_vgg13_bn", progress=False)


def test_checkpoint_of_another_architecture(source_run, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(source_run, bad)
    info = json.loads((bad / "model.json").read_text())
    info["arch"] = "narrow_vgg13_bn"
    (bad / "model.json").write_text(json.dumps(info))
    with pytest.raises(DeparaError, match="weights of another architecture, not narrow_vgg13_bn") as exc:
        load_checkpoint(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(DeparaError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")


# ------------------------------------------------------------------------------------------------ the old bugs
def test_fresh_weights_per_depth_and_bn_copied(source_run):
    src, info = load_checkpoint(source_run)
    units = transfer_units(src)
    from depara.io.files import seed_everything

    seed_everything(7)
    reference = build_model(info.arch, 10, width=info.width).state_dict()  # a fresh init for seed 7
    m2, frozen2 = fresh_transfer_model(src, info, 10, 2, seed=7)
    with torch.no_grad():  # "fine-tune" depth 2: what the original code then reused for depth 3
        for p in m2.parameters():
            if p.requires_grad:
                p.add_(1.0)
    m3, frozen3 = fresh_transfer_model(src, info, 10, 3, seed=7)
    s3, src_state = m3.state_dict(), src.state_dict()
    copied = [k for k in s3 if any(k.startswith(m + ".") for u in units[:3] for m in u.modules)]
    rest = [k for k in s3 if k not in copied]
    assert copied and rest
    assert _state_equal(s3, reference, rest)  # layers above 3 are a fresh init, not depth 2's fine-tuned weights
    assert _state_equal(s3, src_state, copied)  # layers 1..3 are the source's ...
    bn_keys = [k for k in copied if k.startswith("features.1.") or k.startswith("features.5.")]
    assert {k.rsplit(".", 1)[1] for k in bn_keys} == {"weight", "bias", "running_mean", "running_var",
                                                      "num_batches_tracked"}  # ... batch norm included
    assert not torch.equal(src_state["features.1.running_mean"], reference["features.1.running_mean"])
    assert frozen3 == ["features.0", "features.1", "features.4", "features.5", "features.8", "features.9"]
    assert all(not p.requires_grad for n in frozen3 for p in m3.get_submodule(n).parameters())


def test_frozen_layers_and_their_bn_stats_do_not_move_in_training(source_run):
    src, info = load_checkpoint(source_run)
    model, frozen = fresh_transfer_model(src, info, 10, 4, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = ImageSet(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8), torch.arange(16) % 10,
                    [str(d) for d in range(10)])
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], 0.1, 0.9, 5e-4)
    train_one_epoch(model, opt, data, info.mean, info.std, batch_size=8, seed=0, epoch=0, augment=True,
                    frozen_modules=frozen)
    after = model.state_dict()
    frozen_keys = [k for k in after if any(k.startswith(m + ".") for m in frozen)]
    assert _state_equal(before, after, frozen_keys)  # weights AND running stats of transferred layers kept
    assert not torch.equal(before["features.16.running_mean"], after["features.16.running_mean"])  # unit 5 trains
    assert not torch.equal(before["classifier.0.weight"], after["classifier.0.weight"])


# ------------------------------------------------------------------------------------------------ transfer
def test_transfer_layers_writes_a_row_per_depth_and_resumes(tiny_data, source_run, tmp_path):
    kw = dict(target="real", fraction="1of2", depths=[1, 10], epochs=2, batch_size=16, lr=0.05, progress=False)
    rows = transfer_layers(tiny_data, source_run, tmp_path / "t", **kw)
    assert [int(r["depth"]) for r in rows] == [1, 10]
    assert rows[1]["layer"] == "classifier.4" and rows[1]["kind"] == "fc"
    csv_rows = read_csv(tmp_path / "t" / "transfer.csv")
    assert [r["depth"] for r in csv_rows] == ["1", "10"]
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 for r in csv_rows)
    # depth 10 trains only the last layer: 4*width*8*... = (hidden 256 -> 10) weights + biases
    assert int(rows[1]["trainable_params"]) == 256 * 10 + 10
    mtime = (tmp_path / "t" / "transfer.csv").stat().st_mtime_ns
    again = transfer_layers(tiny_data, source_run, tmp_path / "t", **kw)  # all depths done: nothing recomputed
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in csv_rows]
    assert (tmp_path / "t" / "transfer.csv").stat().st_mtime_ns == mtime


def test_transfer_bad_inputs(tiny_data, source_run, tmp_path):
    with pytest.raises(DeparaError, match="real_tenth: target fraction folder missing"):
        transfer_layers(tiny_data, source_run, tmp_path / "t", fraction="tenth", progress=False)
    with pytest.raises(DeparaError, match="fraction 'half'"):
        transfer_layers(tiny_data, source_run, tmp_path / "t", fraction="half", progress=False)
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(tiny_data / "real_1of2", odd / "real_1of2")
    for split in ("train", "val", "test"):
        (odd / "real_1of2" / split / "9").rename(odd / "real_1of2" / split / "nine")
    with pytest.raises(DeparaError, match="class sets differ.*'9'"):
        transfer_layers(odd, source_run, tmp_path / "t2", fraction="1of2", progress=False)
    with pytest.raises(DeparaError, match="depth 11: expected 0..10"):
        fresh_transfer_model(*load_checkpoint(source_run), 10, 11, seed=0)


def test_undecodable_image_in_training_data(tiny_data, tmp_path):
    import shutil

    data = tmp_path / "d"
    shutil.copytree(tiny_data / "real", data / "real")
    (data / "real" / "train" / "3" / "zz_broken.png").write_bytes(b"not a png")
    with pytest.raises(DeparaError, match="zz_broken.png: image failed to decode"):
        train_domain(data, "real", tmp_path / "run", epochs=1, progress=False, **ARCH)


# ------------------------------------------------------------------------------------------------ ImageNet source
def test_imagenet_source_through_torchvision_weights_api(tmp_path, monkeypatch, source_run):
    """A weights file in the torch hub cache under torchvision's file name is loaded by the weights API; FC keys
    land on the same FC layers of the transfer model. Tensors are stride-0 views, so the file is tiny."""
    from torchvision.models import VGG11_BN_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DeparaError, match="ImageNet weights of vgg11_bn not in the torch hub cache"):
        load_imagenet_source("vgg11_bn")
    gen = torch.Generator().manual_seed(0)
    with torch.device("meta"):  # shapes only, no 500 MB allocation
        shapes = {k: v.shape for k, v in build_model("vgg11_bn", 1000).state_dict().items()}
    state = {}
    for k, shape in shapes.items():
        if len(shape) == 0:
            state[k] = torch.tensor(3, dtype=torch.int64)
        else:
            base = torch.randn(shape[0], generator=gen)
            state[k] = base.view(-1, *([1] * (len(shape) - 1))).expand(shape)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / Path(VGG11_BN_Weights.DEFAULT.url).name)
    assert (cache / "vgg11_bn-6002323d.pth").stat().st_size < 10_000_000
    model, info = load_imagenet_source("vgg11_bn")
    assert info.num_classes == 1000 and info.image_size == 224 and info.mean == pytest.approx([0.485, 0.456, 0.406])
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    target, frozen = fresh_transfer_model(model, info, 12, 10, seed=0)  # every layer but the classifier
    t = target.state_dict()
    for key in ("classifier.0.weight", "classifier.3.weight", "classifier.3.bias", "features.26.running_var"):
        assert torch.equal(t[key], state[key]), key
    assert t["classifier.6.weight"].shape == (12, 4096)
    assert target(torch.zeros(1, 3, 32, 32)).shape == (1, 12)
    # a weights file of another architecture under that name: one-line error
    small = build_model("narrow_vgg11_bn", 1000, width=0.125).state_dict()
    torch.save(small, cache / Path(VGG11_BN_Weights.DEFAULT.url).name)
    with pytest.raises(DeparaError, match="weights of another architecture, not vgg11_bn"):
        load_imagenet_source("vgg11_bn")


# ------------------------------------------------------------------------------------------------ CLI
def test_train_and_transfer_cli(tiny_data, tmp_path, capsys):
    from depara.cli.main import main

    run = tmp_path / "run"
    assert main(["train", str(tiny_data), "--domain", "synthetic", "--out", str(run), "--epochs", "1",
                 "--batch-size", "16", "--seed", "1"]) == 0
    assert "best val accuracy" in capsys.readouterr().out
    out = tmp_path / "tr"
    assert main(["transfer", str(tiny_data), "--source", str(run), "--fraction", "1of2", "--depth", "2",
                 "--depth", "9", "--epochs", "1", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "transfer" and (out / "transfer.png").is_file()
    assert [r["depth"] for r in read_csv(out / "transfer.csv")] == ["2", "9"]
    capsys.readouterr()
    assert main(["transfer", str(tiny_data), "--source", str(run), "--fraction", "hundredth", "--out",
                 str(tmp_path / "x")]) == 2
    assert "real_hundredth: target fraction folder missing" in capsys.readouterr().err
