"""depara.extraction.extract: features, attributions and graphs of a small CNN against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from torch import nn

from depara.errors import DeparaError
from depara.extraction.extract import attribution_maps, build_graph, build_graphs, capture_features
from depara.extraction.probes import Preprocess, ProbeSet

from _core_torch_helpers import random_images, tiny_vgg

torch.set_num_threads(1)


def _hand_gradient(net: nn.Sequential, x: torch.Tensor, upto: int, scalar: str) -> torch.Tensor:
    """∂s/∂x image by image (batch of one each), with net[:upto+1] as the layer's output."""
    grads = []
    for xi in x:
        xi = xi[None].clone().requires_grad_(True)
        out = net[: upto + 1](xi).flatten()
        s = {"sum": out.sum(), "mean": out.mean(), "l2": torch.sqrt((out ** 2).sum())}[scalar]
        (g,) = torch.autograd.grad(s, xi)
        grads.append(g[0])
    return torch.stack(grads)


def _reduce(a: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "mean":
        a = a.mean(axis=1)
    elif reduction == "abs_mean":
        a = np.abs(a).mean(axis=1)
    return a.reshape(a.shape[0], -1)


@pytest.mark.parametrize("scalar", ["sum", "mean", "l2"])
@pytest.mark.parametrize("reduction", ["mean", "abs_mean", "none"])
def test_input_x_gradient_equals_hand_computation(scalar, reduction):
    net = tiny_vgg()
    x = random_images(6)
    g = build_graph(net, x, "5", scalar=scalar, channel_reduction=reduction, batch_size=4, node_size=None)
    grad = _hand_gradient(net, x, 5, scalar)
    expected = _reduce((grad * x).detach().numpy(), reduction)
    np.testing.assert_allclose(g.nodes, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert g.meta["scalar"] == scalar and g.meta["channel_reduction"] == reduction
    assert g.meta["layer"] == "5" and g.meta["method"] == "input_x_gradient"


@pytest.mark.parametrize("scalar", ["sum", "l2"])
def test_saliency_is_absolute_gradient(scalar):
    net = tiny_vgg()
    x = random_images(5)
    g = build_graph(net, x, "8", method="saliency", scalar=scalar, channel_reduction="mean", node_size=None)
    grad = _hand_gradient(net, x, 8, scalar)
    expected = grad.abs().mean(dim=1).flatten(1).numpy()
    np.testing.assert_allclose(g.nodes, expected, rtol=1e-4, atol=1e-7)


def test_edges_are_centred_cosine_of_manual_features():
    net = tiny_vgg()
    x = random_images(7)
    g = build_graph(net, x, "6")
    with torch.no_grad():
        feats = net[:7](x).flatten(1).double().numpy()
    expected = 1.0 - pdist(feats - feats.mean(axis=0), "cosine")
    np.testing.assert_allclose(g.edges, expected, atol=1e-5)
    g_raw = build_graph(net, x, "6", center=False, edge="correlation")
    np.testing.assert_allclose(g_raw.edges, 1.0 - pdist(feats, "correlation"), atol=1e-5)


def test_capture_features_equals_manual_forward_in_one_pass():
    net = tiny_vgg()
    x = random_images(4)
    feats = capture_features(net, x, ["1", "6", "12"])
    with torch.no_grad():
        for name in ("1", "6", "12"):
            torch.testing.assert_close(feats[name], net[: int(name) + 1](x))
    assert list(feats) == ["1", "6", "12"]


def test_fast_gradient_path_matches_captum():
    import captum.attr as ca

    from depara.extraction.extract import _LayerScalar

    net = tiny_vgg()
    x = random_images(4)
    fn = _LayerScalar(net, "6", "mean")
    ixg = ca.InputXGradient(fn).attribute(x.clone().requires_grad_(True))
    sal = ca.Saliency(fn).attribute(x.clone().requires_grad_(True), abs=True)
    torch.testing.assert_close(attribution_maps(net, x, "6", scalar="mean"), ixg.detach())
    torch.testing.assert_close(attribution_maps(net, x, "6", method="saliency", scalar="mean"), sal.detach())


@pytest.mark.parametrize("method", ["input_x_gradient", "saliency", "integrated_gradients"])
def test_no_gradient_leaks_between_layers(method):
    """Bug 1 of the original: the map of layer B must not change when layer A is extracted with it."""
    net = tiny_vgg()
    x = random_images(6)
    together = build_graphs(net, x, ["2", "8", "12"], method=method, batch_size=3)
    for name in ("2", "8", "12"):
        alone = build_graph(net, x, name, method=method, batch_size=3)
        np.testing.assert_allclose(together[name].nodes, alone.nodes, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(together[name].edges, alone.edges, rtol=1e-5, atol=1e-6)
    # and the maps of different layers do differ (so the comparison above can fail)
    assert not np.allclose(together["2"].nodes, together["12"].nodes, rtol=1e-3)


def test_in_place_activations_do_not_overwrite_captured_layers():
    """ReLU(inplace=True) after a captured conv must not turn the conv's features/maps into post-ReLU ones."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                        nn.ReLU(inplace=True))
    x = random_images(5, size=8)
    with torch.no_grad():
        conv0 = net[0](x)
    assert (conv0 < 0).any()
    torch.testing.assert_close(capture_features(net, x, ["0", "3"])["0"], conv0)
    together = build_graphs(net, x, ["0", "3"], scalar="l2")
    alone = build_graph(net, x, "0", scalar="l2")
    np.testing.assert_allclose(together["0"].nodes, alone.nodes, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(together["0"].edges, alone.edges, atol=1e-6)


def test_one_forward_pass_per_batch_for_all_layers():
    net = tiny_vgg()
    x = random_images(10)
    calls = []
    handle = net[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        build_graphs(net, x, ["0", "2", "4", "6", "8", "12"], batch_size=4)
    finally:
        handle.remove()
    assert len(calls) == 3  # ceil(10 / 4) batches, one forward each


def test_forward_stops_after_the_last_requested_layer():
    net = tiny_vgg()
    calls = []
    handle = net[12].register_forward_hook(lambda *a: calls.append(1))
    try:
        build_graph(net, random_images(4), "4")
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("scalar", ["sum", "l2"])
def test_linear_model_all_methods_equal_gradient_times_input(scalar, monkeypatch):
    """For a bias-free linear model and a zero baseline, IG, DeepLIFT and LRP (ε → 0) all equal x ⊙ ∂s/∂x
    (for s = ‖z‖ LRP starts from the relevance z_k²/‖z‖, which also gives x ⊙ ∂s/∂x)."""
    import depara.extraction.extract

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 3, bias=False))
    x = random_images(5, size=8)
    ref = build_graph(net, x, "2", scalar=scalar, channel_reduction="none").nodes
    for method in ("integrated_gradients", "deeplift"):
        got = build_graph(net, x, "2", method=method, scalar=scalar, channel_reduction="none").nodes
        if scalar == "sum":  # IG/DeepLIFT of a non-linear scalar (‖z‖) differ from grad×input by design
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max(), err_msg=method)
    lrp_eps = build_graph(net, x, "2", method="lrp", scalar=scalar, channel_reduction="none")
    assert lrp_eps.meta["lrp_epsilon"] == 1e-4
    monkeypatch.setattr(depara.extraction.extract, "LRP_EPSILON", 1e-12)
    lrp = build_graph(net, x, "2", method="lrp", scalar=scalar, channel_reduction="none").nodes
    np.testing.assert_allclose(lrp, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
    # ε = 1e-4 absorbs a little relevance where activations are near zero: close, not equal
    assert np.corrcoef(lrp_eps.nodes.ravel(), ref.ravel())[0, 1] > 0.99
    assert not np.allclose(lrp_eps.nodes, ref, rtol=1e-6, atol=0)


def test_batch_size_does_not_change_the_graph():
    net = tiny_vgg()
    x = random_images(7)
    a = build_graph(net, x, "6", batch_size=2)
    b = build_graph(net, x, "6", batch_size=7)
    np.testing.assert_allclose(a.nodes, b.nodes, rtol=1e-4, atol=1e-6 * np.abs(b.nodes).max())
    np.testing.assert_allclose(a.edges, b.edges, atol=1e-6)


def test_model_state_restored_and_no_parameter_gradients():
    net = tiny_vgg().train()
    build_graph(net, random_images(4), "6")
    assert net.training
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


def test_eval_mode_is_used():
    net = tiny_vgg().train()
    x = random_images(4)
    g = build_graph(net, x, "1", channel_reduction="none", center=False)
    expected = build_graph(net.eval(), x, "1", channel_reduction="none", center=False)
    np.testing.assert_allclose(g.nodes, expected.nodes)


def test_node_grid_resampling_makes_different_input_sizes_comparable():
    net = tiny_vgg()
    images = [np.random.default_rng(i).random((40, 40, 3)) for i in range(5)]
    probes = ProbeSet.from_images(images, preprocess="32x32")
    g32 = build_graph(net, probes, "8", node_size=16)
    g48 = build_graph(net, probes, "8", node_size=16, preprocess=Preprocess(size=48))
    assert g32.nodes.shape == g48.nodes.shape == (5, 256)
    assert g32.probe_ids == g48.probe_ids == tuple("01234")
    assert g48.meta["input_size"] == [48, 48] and g48.meta["node_grid"] == [16, 16]
    # shrinking is an area average: 32 → 16 = mean of 2×2 blocks of the native map
    native = build_graph(net, probes, "8", node_size=None).nodes.reshape(5, 16, 2, 16, 2).mean(axis=(2, 4)).reshape(5, -1)
    np.testing.assert_allclose(g32.nodes, native, rtol=1e-5, atol=1e-8)
    # enlarging is bilinear
    up = build_graph(net, probes, "8", node_size=(40, 36))
    assert up.nodes.shape == (5, 40 * 36)


# ------------------------------------------------------------------------------------------- bad input
def test_unknown_layer_lists_close_matches():
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()))
    with pytest.raises(DeparaError, match=r"layer 'feature\.0'.*did you mean features\.0"):
        build_graph(net, random_images(3), "feature.0")


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "gradcam"}, "method: expected one of"),
    ({"scalar": "max"}, "scalar: expected one of"),
    ({"channel_reduction": "max"}, "channel_reduction: expected one of"),
    ({"batch_size": 0}, "batch_size: expected a positive"),
    ({"node_size": (0, 4)}, "node_size: expected positive"),
    ({"device": "tpu9"}, "device: 'tpu9' is not a torch device"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(DeparaError, match=match):
        build_graph(tiny_vgg(), random_images(3), "2", **kwargs)


def test_bad_probe_tensor():
    with pytest.raises(DeparaError, match="N×C×H×W"):
        build_graph(tiny_vgg(), torch.randn(3, 32, 32), "2")
    x = random_images(3)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(DeparaError, match="NaN"):
        build_graph(tiny_vgg(), x, "2")


class _Blowup(nn.Module):
    def forward(self, x):
        return x * float("inf")


def test_non_finite_features_name_the_layer():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), _Blowup(), nn.ReLU())
    with pytest.raises(DeparaError, match=r"layer '1': features contain NaN/Inf"):
        build_graph(net, random_images(3), "1")


def test_lrp_unsupported_module_is_a_clear_error():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.GELU(), nn.Conv2d(2, 2, 3))
    with pytest.raises(DeparaError, match=r"method lrp: Captum has no LRP rule for module type .*GELU"):
        build_graph(net, random_images(3, size=8), "2", method="lrp")


def test_lrp_reused_module_is_a_clear_error():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    with pytest.raises(DeparaError, match="method lrp"):
        build_graph(Reuse(), random_images(3, size=8), "output", method="lrp")


def test_output_layer_alias_and_tuple_output():
    net = tiny_vgg()
    g = build_graph(net, random_images(4), "output")
    np.testing.assert_allclose(g.nodes, build_graph(net, random_images(4), "12").nodes, rtol=1e-6)

    class TupleOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x), x

    with pytest.raises(DeparaError, match="not a tensor"):
        build_graph(TupleOut(), random_images(3), "output")


def test_probe_ids_from_probe_set_and_override():
    net = tiny_vgg()
    probes = ProbeSet.from_images([np.zeros((32, 32, 3)) + i / 10 for i in range(4)], ids=list("abcd"),
                                  preprocess="32x32")
    assert build_graph(net, probes, "12").probe_ids == tuple("abcd")
    x = random_images(4)
    assert build_graph(net, x, "12", probe_ids=list("wxyz")).probe_ids == tuple("wxyz")
    with pytest.raises(DeparaError, match="probe_ids"):
        build_graph(net, x, "12", probe_ids=["a"])


def test_duplicate_probe_ids_fail_before_any_forward_pass():
    net = tiny_vgg()
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(DeparaError, match="probe_ids: ids must be unique, 'w' occurs 2 times"):
        build_graph(net, random_images(4), "12", probe_ids=list("wxyw"))
    assert calls == []


def test_deeplift_handles_in_place_relu_and_refuses_a_shared_relu():
    torch.manual_seed(5)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1), nn.ReLU())
    inplace = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3, padding=1),
                            nn.ReLU(inplace=True))
    inplace.load_state_dict(plain.state_dict())
    x = random_images(4, size=8)
    a = build_graph(plain, x, "3", method="deeplift")
    b = build_graph(inplace, x, "3", method="deeplift")
    np.testing.assert_allclose(a.nodes, b.nodes, rtol=1e-5, atol=1e-7)
    assert inplace[1].inplace  # restored

    class SharedRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.relu = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()

        def forward(self, x):
            return self.relu(self.c2(self.relu(self.c1(x))))

    with pytest.raises(DeparaError, match="method deeplift: Captum cannot run DeepLift"):
        build_graph(SharedRelu(), x, "output", method="deeplift")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(DeparaError, match="device 'cuda': CUDA is not available"):
        build_graph(tiny_vgg(), random_images(3), "2", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    net = tiny_vgg()
    x = random_images(6)
    cpu = build_graph(net, x, "8", device="cpu")
    gpu = build_graph(net, x, "8", device="cuda")
    np.testing.assert_allclose(gpu.nodes, cpu.nodes, rtol=1e-3, atol=1e-5 * np.abs(cpu.nodes).max())


@pytest.mark.parametrize("method, exc", [("deeplift", AssertionError()), ("lrp", RuntimeError()),
                                         ("lrp", TypeError())])
def test_captum_errors_with_an_empty_message_are_one_line(monkeypatch, method, exc):
    """Captum raising with no message at all: one line naming the method and the exception's type (its empty
    message once made an IndexError)."""
    import captum.attr as ca

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(ca.DeepLift if method == "deeplift" else ca.LRP, "attribute", fail)
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    with pytest.raises(DeparaError, match=rf"^method {method}: Captum .*\b{type(exc).__name__}\b[^\n]*$"):
        build_graph(net, random_images(3, size=8), "2", method=method)
