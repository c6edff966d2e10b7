"""``layers="auto"`` over EVERY torchvision classification builder and common timm families.

Each model is built on the meta device (no memory, no weights) with 7 classes, then run once on a meta batch with
a forward hook on every auto candidate, so the checks are about what the model really executes:

* 3 to 12 candidates, distinct, and each one runs in the forward pass (auxiliary heads that only run in
  training are never offered);
* in depth order: the candidates' outputs come in the order they are listed;
* never the logits: no candidate's output has the shape of the model's output (batch × 7);
* never a container of the whole trunk: no candidate holds more than 3/4 of the model's leaf modules (the
  old picks ViT ``encoder``, RegNet ``trunk_output`` and MaxViT ``blocks`` held over 97 %), and no candidate
  holds another one.
"""

from __future__ import annotations

import contextlib
import re

import pytest

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")

from depara.extraction.layers_auto import auto_layers, family  # noqa: E402

N_CLASSES = 7


@contextlib.contextmanager
def _meta_regnet_widths():
    """RegNet computes its stage widths with torch ops and reads them back (``.tolist()``), which the meta device
    cannot: those few ops run on the CPU, the modules are still built on the meta device."""
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return original(*args, **kwargs)

    regnet.BlockParams.from_init_params = on_cpu
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original


def _meta_tv(name: str):
    with _meta_regnet_widths(), torch.device("meta"), pytest.warns() if name in ("googlenet", "inception_v3") \
            else contextlib.nullcontext():
        return tvm.get_model(name, weights=None, num_classes=N_CLASSES).eval()


def _leaves(module) -> int:
    return sum(1 for m in module.modules() if next(m.children(), None) is None)


def _check(model, size: int) -> list[str]:
    """Run the property checks of the module docstring; return the candidates."""
    layers = auto_layers(model)
    assert 3 <= len(layers) <= 12 and len(set(layers)) == len(layers), layers
    modules = dict(model.named_modules())
    fired: list[tuple[str, tuple]] = []
    hooks = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: fired.append((n, tuple(out.shape) if torch.is_tensor(out) else None)))
        for n in layers]
    try:
        with torch.no_grad():
            out = model(torch.empty(2, 3, size, size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    first = list(dict.fromkeys(n for n, _ in fired))
    assert first == layers, f"execution order {first} != {layers}"
    assert tuple(out.shape) == (2, N_CLASSES)
    assert all(shape is not None and shape != (2, N_CLASSES) for _, shape in fired), fired
    total = _leaves(model)
    for n in layers:
        assert _leaves(modules[n]) <= 0.75 * total, (n, _leaves(modules[n]), total)
        assert not any(o != n and o.startswith(n + ".") for o in layers), (n, layers)
    return layers


@pytest.mark.parametrize("name", tvm.list_models(module=tvm))
def test_auto_layers_every_torchvision_classifier(name):
    model = _meta_tv(name)
    layers = _check(model, 299 if name.startswith("inception") else 224)
    if name.startswith("vit_"):
        assert all(re.fullmatch(r"encoder\.layers\.encoder_layer_\d+", n) for n in layers), layers
        assert layers[-1] == f"encoder.layers.encoder_layer_{len(model.encoder.layers) - 1}"
    if name.startswith("regnet_"):
        assert layers == ["trunk_output.block1", "trunk_output.block2", "trunk_output.block3",
                          "trunk_output.block4"]
    if name.startswith("mnasnet"):
        assert layers == [f"layers.{i}" for i in range(8, 14)]  # its six inverted-residual stacks
    if name == "maxvit_t":
        assert layers == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    if name.startswith(("googlenet", "inception")):
        assert not any("aux" in n.lower() for n in layers)


def test_auto_layers_named_cases():
    """Hand-checked lists for one model of each rule (these are what the docs promise)."""
    assert _check(_meta_tv("vit_b_16"), 224) == [f"encoder.layers.encoder_layer_{i}" for i in (2, 5, 8, 11)]
    assert _check(_meta_tv("densenet121"), 224) == [
        "features.denseblock1", "features.transition1", "features.denseblock2", "features.transition2",
        "features.denseblock3", "features.transition3", "features.denseblock4"]
    assert _check(_meta_tv("shufflenet_v2_x1_0"), 224) == ["conv1", "stage2", "stage3", "stage4", "conv5"]
    assert _check(_meta_tv("swin_t"), 224) == [f"features.{i}" for i in range(1, 8)]
    assert family(_meta_tv("alexnet")) == "vgg"
    assert auto_layers(_meta_tv("alexnet")) == ["features.2", "features.5", "features.12"]


TIMM = ["resnet50", "efficientnet_b0", "convnext_tiny", "mobilenetv3_small_100", "regnety_002",
        "swin_tiny_patch4_window7_224", "deit_tiny_patch16_224", "vit_small_patch16_224", "densenet121",
        "vgg16", "maxvit_tiny_tf_224", "resnetv2_50", "mobilevit_s", "beit_base_patch16_224", "mixer_b16_224"]


@pytest.mark.parametrize("name", TIMM)
def test_auto_layers_timm_families(name):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=N_CLASSES).eval()
    layers = _check(model, 256 if name.startswith("mobilevit") else 224)
    if name.startswith(("deit", "vit", "beit", "mixer")):  # a uniform block stack: every third, ending with the last
        n = len(model.blocks)
        assert layers == [f"blocks.{i}" for i in range(n - 1, -1, -3)][::-1]
    else:  # timm's own feature levels
        assert layers == [f["module"] for f in model.feature_info]


def test_plain_sequential_keeps_its_layers():
    """A model of single layers: every child except Dropout / Flatten and the final Linear."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Dropout(),
                              torch.nn.Conv2d(4, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert family(net) == "generic" and auto_layers(net) == ["0", "1", "3"]
