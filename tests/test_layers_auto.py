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

from depara.errors import DeparaError  # noqa: E402
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


class _LukemelasStyle(torch.nn.Module):
    """The layout of lukemelas' EfficientNet (``efficientnet_pytorch``): a padded stem convolution (a module of
    modules), one ``_blocks`` ModuleList holding the trunk, a head convolution, pooling and ``_fc``."""

    def __init__(self, n_blocks: int = 10):
        super().__init__()
        nn = torch.nn

        def padded_conv(cin, cout, stride):  # Conv2dStaticSamePadding: a Conv2d holding its padding module
            conv = nn.Conv2d(cin, cout, 3, stride)
            conv.static_padding = nn.ZeroPad2d(1)
            return conv

        self._conv_stem, self._bn0 = padded_conv(3, 8, 2), nn.BatchNorm2d(8)
        self._blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
                                     for _ in range(n_blocks))
        self._conv_head, self._bn1 = padded_conv(8, 16, 1), nn.BatchNorm2d(16)
        self._avg_pooling, self._dropout, self._fc = nn.AdaptiveAvgPool2d(1), nn.Dropout(0.2), nn.Linear(16, N_CLASSES)

    def forward(self, x):
        x = self._bn0(self._conv_stem(self._conv_stem.static_padding(x)))
        for block in self._blocks:
            x = block(x)
        x = self._bn1(self._conv_head(self._conv_head.static_padding(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


def test_a_block_list_holding_the_trunk_is_opened():
    """lukemelas' EfficientNet layout: before, auto gave ``_conv_stem``, ``_blocks`` (the whole trunk), ``_conv_head``;
    now the stem, the blocks evenly spaced and the head, 8 in all, each a real stage of the forward pass."""
    with torch.device("meta"):
        net = _LukemelasStyle().eval()
    assert family(net) == "generic"
    # 12 in depth order (stem, 10 blocks, head); 8 evenly spaced: positions round(i · 11/7) = 0 2 3 5 6 8 9 11
    assert _check(net, 32) == ["_conv_stem", "_blocks.1", "_blocks.2", "_blocks.4", "_blocks.5", "_blocks.7",
                               "_blocks.8", "_conv_head"]


# ------------------------------------------------------------------------------------------------- flat graphs
def test_resolution_ends_by_hand():
    """Level ends: the last output before each drop in size; global poolings passed over; the walk stops where the
    size first grows (a neck); a network at 32 px may legitimately end at 1×1 (from 2×2, by a convolution)."""
    from depara.extraction.layers_auto import resolution_ends

    outs = [("stem", (16, 16), True), ("act0", (16, 16), False), ("down1", (8, 8), True),
            ("se_pool", (1, 1), False), ("se_conv", (1, 1), True), ("se_mul", (8, 8), False), ("act1", (8, 8), False),
            ("down2", (4, 4), True), ("act2", (4, 4), False), ("up", (8, 8), False), ("neck", (8, 8), True)]
    assert resolution_ends(outs) == ["act0", "act1", "act2"]
    # 32 px: the last stage's stride-2 convolution makes 2×2 → 1×1 (a level); a head's pooling from 2×2 does not
    small = [("s3", (2, 2), True), ("down4", (1, 1), True), ("act4", (1, 1), False)]
    assert resolution_ends(small) == ["s3", "act4"]
    assert resolution_ends([("s4", (2, 2), True), ("pool", (1, 1), False)]) == ["s4"]
    assert resolution_ends([("only", (7, 7), True)]) == ["only"] and resolution_ends([]) == []


class _FlatNet(torch.nn.Module):
    """Every layer a top-level child (the shape onnx2torch gives a converted file): a slicing stem without
    parameters, two downsampling stages with a squeeze-and-excitation gate, an upsampling neck and a softmax head."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv0, self.act0 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.conv1, self.act1 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
        self.se_pool, self.se_conv, self.se_gate = nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1), nn.Sigmoid()
        self.conv2, self.act2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()
        self.up, self.neck = nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 1)
        self.pool, self.flat, self.fc, self.softmax = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5), \
            nn.Softmax(dim=1)

    def forward(self, x):
        x = x[:, :, ::1, ::1]  # a parameter-free stem op before the first convolution
        x = self.act0(self.conv0(x))
        x = self.act1(self.conv1(x))
        x = x * self.se_gate(self.se_conv(self.se_pool(x)))
        x = self.act2(self.conv2(x))
        x = self.neck(self.up(x))
        return self.softmax(self.fc(self.flat(self.pool(x))))


def test_auto_layers_of_a_flat_fx_graph():
    net = torch.fx.symbolic_trace(_FlatNet().eval())
    assert family(net) == "graph"
    # gate output × x is a function call, not a module: act1 ends the 16-px level, the neck (upsampled) is left out
    assert auto_layers(net, (3, 32, 32)) == ["act0", "act1", "act2"]


def test_auto_layers_of_a_resnet_converted_from_onnx(tmp_path):
    """ResNet-18 exported to ONNX and converted back (onnx2torch, through depara's own loader): auto gives the
    stem and the four residual stages, whose outputs equal torchvision's ``relu``, ``layer1`` … ``layer4``."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    import warnings

    from depara.extraction.extract import capture_features
    from depara.extraction.models import load_onnx

    torch.manual_seed(0)
    net = tvm.resnet18(weights=None, num_classes=N_CLASSES).eval()
    x = torch.randn(2, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(tmp_path / "r18.onnx"), dynamo=False, input_names=["x"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}})
        model = load_onnx(tmp_path / "r18.onnx")
    assert family(model) == "graph"
    layers = auto_layers(model, (3, 64, 64))
    assert len(layers) == 5 and layers[1].startswith("layer1/") and layers[4].startswith("layer4/")
    got = capture_features(model, x, layers)
    want = capture_features(net, x, ["relu", "layer1", "layer2", "layer3", "layer4"])
    for a, b in zip(got.values(), want.values()):
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=1e-4, atol=1e-4)
    # end to end: select over the file at 64 px ranks exactly these five layers
    from _core_torch_helpers import write_shifted_classes

    from depara.selection.job import select

    data = write_shifted_classes(tmp_path / "data", 4)
    from depara.extraction.zoo import ModelEntry

    entry = ModelEntry("r18", f"file:{tmp_path / 'r18.onnx'}", preprocessing="64x64")
    sel = select(data, [entry], n_boot=0, cache_dir=tmp_path / "cache")
    assert sorted(layer for _, layer in sel.candidates) == sorted(layers)


def test_auto_refuses_in_one_line_when_no_candidate_takes_a_batch():
    """A model recorded as taking a batch image by image only before its first candidate (what load_onnx records
    for a fixed batch of 1): auto keeps the candidates before that node, and refuses in one line when none is."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    net.batch_safe_layers, net.batch_unsafe_from = frozenset({"0"}), "1"
    assert auto_layers(net) == ["0"]
    net.batch_safe_layers, net.batch_unsafe_from = frozenset(), "0"
    with pytest.raises(DeparaError, match=r"no auto candidate comes before node '0', from which it no longer takes "
                                          r"a batch image by image; name the layers") as err:
        auto_layers(net)
    assert "\n" not in str(err.value)
