"""depara.extraction.models: torchvision / timm / file specs, the offline hub cache, layer listing, bad input."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from depara.errors import DeparaError
from depara.extraction.models import list_layers, load_model, parse_spec

from _core_torch_helpers import random_images, tiny_vgg

torch.set_num_threads(1)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_parse_spec():
    assert parse_spec("torchvision:resnet18") == ("torchvision", "resnet18", {})
    assert parse_spec("file:/tmp/w.pt?arch=vgg11_bn&num_classes=12") == \
        ("file", "/tmp/w.pt", {"arch": "vgg11_bn", "num_classes": "12"})


def test_torchvision_random_init_in_eval_mode():
    model = load_model("torchvision:squeezenet1_1")
    assert isinstance(model, nn.Module) and not model.training
    assert load_model("torchvision:squeezenet1_1", num_classes=7).classifier[1].out_channels == 7


def test_torchvision_named_weights_load_from_the_hub_cache(tmp_path, monkeypatch):
    """DEFAULT weights come from $TORCH_HOME/hub/checkpoints/<file of the weights URL>, no network needed."""
    from torchvision.models import get_model, get_model_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("DEPARA_OFFLINE", "1")
    url = get_model_weights("squeezenet1_1").DEFAULT.url
    cached = tmp_path / "hub" / "checkpoints" / os.path.basename(url)
    with pytest.raises(DeparaError, match=f"missing file {cached}"):
        load_model("torchvision:squeezenet1_1", weights="DEFAULT")
    torch.manual_seed(3)
    reference = get_model("squeezenet1_1", weights=None)
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    for w in ("DEFAULT", "IMAGENET1K_V1", "SqueezeNet1_1_Weights.IMAGENET1K_V1"):
        assert _same_weights(load_model("torchvision:squeezenet1_1", weights=w), reference)


def test_torchvision_missing_weights_without_offline_flag_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("DEPARA_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(DeparaError, match=r"not in the torch hub cache .*missing file .*squeezenet1_1-"):
        load_model("torchvision:squeezenet1_1", weights="DEFAULT")


def test_state_dict_files_with_arch(tmp_path):
    torch.manual_seed(4)
    ref = load_model("torchvision:squeezenet1_1", num_classes=12)
    pt, st = tmp_path / "w.pt", tmp_path / "w.safetensors"
    torch.save({"state_dict": ref.state_dict()}, pt)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, st)
    # the 12-class head is read from the file
    assert _same_weights(load_model(f"file:{pt}?arch=squeezenet1_1"), ref)
    assert _same_weights(load_model(f"file:{st}", arch="torchvision:squeezenet1_1"), ref)
    assert _same_weights(load_model("torchvision:squeezenet1_1", weights=str(st)), ref)


def test_state_dict_with_a_linear_head_of_another_size(tmp_path):
    ref = load_model("torchvision:mobilenet_v3_small", num_classes=3)  # head differs from the 1000-class default
    path = tmp_path / "mnv3.pt"
    torch.save(ref.state_dict(), path)
    assert _same_weights(load_model(f"file:{path}?arch=mobilenet_v3_small"), ref)


def test_torchscript_file(tmp_path):
    net = tiny_vgg()
    path = tmp_path / "net.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still what users have
        torch.jit.save(torch.jit.trace(net, random_images(2)), str(path))
    model = load_model(f"file:{path}")
    x = random_images(3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
    assert list_layers(model, (3, 32, 32)) == [("output", (5,))]


def test_timm_random_init_and_uncached_pretrained(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = load_model("timm:resnet10t", num_classes=4)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(DeparaError, match="weights of timm:resnet10t: not in the local"):
        load_model("timm:resnet10t", weights="DEFAULT")


def test_list_layers_shapes():
    layers = dict(list_layers(tiny_vgg(), input_size=(3, 32, 32)))
    assert layers["0"] == (4, 32, 32) and layers["3"] == (4, 16, 16) and layers["7"] == (8, 8, 8)
    assert layers["11"] == (32,) and layers["12"] == (5,)
    assert list(layers) == [str(i) for i in range(13)]


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("spec, match", [
    ("torchvision:resnet19", r"unknown torchvision model; did you mean .*resnet18"),
    ("torchvison:resnet18", "unknown source 'torchvison' .did you mean torchvision"),
    ("resnet18", "expected 'torchvision:<name>'"),
    ("timm:resnet51", r"unknown timm model; did you mean .*resnet50"),
    ("file:/nonexistent/w.pt", "model file /nonexistent/w.pt: not found"),
    ("torchvision:", "missing the name"),
    ("file:x.pt?archh=vgg", "unknown option"),
])
def test_bad_specs(spec, match):
    with pytest.raises(DeparaError, match=match):
        load_model(spec)


def test_bad_weights_and_files(tmp_path):
    with pytest.raises(DeparaError, match="weights 'IMAGENET9' .*available: DEFAULT, IMAGENET1K_V1"):
        load_model("torchvision:squeezenet1_1", weights="IMAGENET9")
    state = tmp_path / "sd.pt"
    torch.save(tiny_vgg().state_dict(), state)
    with pytest.raises(DeparaError, match="holds a state dict, not TorchScript; name its architecture"):
        load_model(f"file:{state}")
    with pytest.raises(DeparaError, match="does not fit the architecture"):
        load_model(f"file:{state}?arch=squeezenet1_1")
    pickled = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(2, 2)), pickled)  # a pickled module: refused, never unpickled
    with pytest.raises(DeparaError, match="pickled whole models are refused"):
        load_model(f"file:{pickled}?arch=squeezenet1_1")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(DeparaError, match="not a readable safetensors file"):
        load_model(f"file:{junk}?arch=squeezenet1_1")
    with pytest.raises(DeparaError, match="input_size"):
        list_layers(tiny_vgg(), (3, 0, 32))
    with pytest.raises(DeparaError, match="cannot run on it"):
        list_layers(tiny_vgg(), (5, 32, 32))


def test_cached_weights_failing_with_an_empty_message_are_one_line(tmp_path, monkeypatch):
    """A cached weights file whose loading raises with no message: one line naming the weights, the file and the
    exception's type (the empty message once made an IndexError)."""
    from torchvision import models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("DEPARA_OFFLINE", "1")
    cached = tmp_path / "hub" / "checkpoints" / os.path.basename(tvm.get_model_weights("squeezenet1_1").DEFAULT.url)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not weights")

    def fail(*args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(tvm, "get_model", fail)
    with pytest.raises(DeparaError, match=rf"^weights \S+ of torchvision:squeezenet1_1: cached file {cached} cannot be "
                                          r"loaded \(RuntimeError\)$"):
        load_model("torchvision:squeezenet1_1", weights="DEFAULT")
