"""Whole-model files of today: `file:model.pt2` (torch.export) and `file:model.onnx` (onnx2torch, the `[onnx]`
extra) load with their layer names and give the graphs of the model they were made from; TorchScript still loads.
The ONNX cases skip without onnx / onnx2torch."""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from depara.errors import DeparaError
from depara.extraction.extract import build_graphs
from depara.extraction.models import list_layers, load_exported, load_model, load_onnx
from depara.options import GraphOptions

torch.set_num_threads(1)
SIZE = 16


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3)).eval()


def _example(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("model_files")
    net = _net()
    program = torch.export.export(net, (_example(),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, d / "net.pt2")
    torch.export.save(torch.export.export(net, (_example(),)), d / "fixed.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated; still supported here
        torch.jit.script(net).save(str(d / "net.ts"))
    return net, d


def _onnx(files, name: str = "net.onnx", dynamic: bool = True):
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    net, d = files
    if not (d / name).exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (_example(),), str(d / name), dynamo=False, input_names=["x"],
                              opset_version=17, dynamic_axes={"x": {0: "batch"}} if dynamic else None)
    return d / name


def _graph_edges(model: nn.Module, layer: str) -> np.ndarray:
    g = build_graphs(model, _example(6), [layer], GraphOptions(node_size=4), batch_size=4)[layer]
    return g.edges


def test_pt2_loads_with_the_source_models_layer_names_and_gives_its_graphs(files):
    net, d = files
    model = load_model(f"file:{d / 'net.pt2'}")
    assert not model.training
    assert [n for n, _ in model.named_modules() if n] == [n for n, _ in net.named_modules() if n]
    x = _example(5)  # another batch size than the example it was exported with
    torch.testing.assert_close(model(x), net(x))
    assert [s for _, s in list_layers(model, (3, SIZE, SIZE))] == [s for _, s in list_layers(net, (3, SIZE, SIZE))]
    for layer in ("1", "2.0"):
        np.testing.assert_allclose(_graph_edges(model, layer), _graph_edges(net, layer), rtol=1e-5, atol=1e-6)


def test_onnx_loads_with_its_node_names_and_gives_the_source_models_graphs(files):
    import onnx

    net, _ = files
    path = _onnx(files)
    model = load_model(f"file:{path}")
    # onnx2torch's names: the node names with "." as "/" and the leading "/" dropped
    node_names = [n.name.replace(".", "/").lstrip("/") for n in onnx.load(str(path)).graph.node]
    names = [n for n, _ in model.named_modules() if n]
    assert names == [n for n in node_names if n in names] and "2/2/0/Conv" in names  # the exporter's scopes
    assert [n for n, _ in load_onnx(path).named_modules()] == [n for n, _ in model.named_modules()]
    x = _example(5)
    torch.testing.assert_close(model(x), net(x), rtol=1e-5, atol=1e-6)
    # the ONNX node of the inner conv outputs what the source model's module "2.0" outputs: the same graph
    np.testing.assert_allclose(_graph_edges(model, "2/2/0/Conv"), _graph_edges(net, "2.0"), rtol=1e-4, atol=1e-5)


def test_onnx_with_shared_weights_converts(tmp_path):
    """torch.onnx.export writes a shared (equal) tensor once plus an Identity node per copy, which onnx2torch alone
    cannot convert; the loader inlines those copies."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU()).eval()
    with torch.no_grad():
        net[0].bias.zero_()
        net[2].bias.zero_()  # two equal bias tensors: stored once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (_example(),), str(tmp_path / "shared.onnx"), dynamo=False, input_names=["x"],
                          opset_version=17, dynamic_axes={"x": {0: "batch"}})
    assert "Identity" in {n.op_type for n in onnx.load(str(tmp_path / "shared.onnx")).graph.node}
    model = load_onnx(tmp_path / "shared.onnx")
    torch.testing.assert_close(model(_example(3)), net(_example(3)), rtol=1e-5, atol=1e-6)


def test_select_ranks_pt2_and_onnx_files_as_the_model_they_were_made_from(files, tmp_path):
    from depara.extraction.zoo import ModelEntry
    from depara.selection import select

    from _core_torch_helpers import write_images

    net, d = files
    for c in range(3):
        write_images(tmp_path / "data" / f"class{c}", [f"{i}.png" for i in range(4)], size=(SIZE, SIZE), seed=c)
    prep = f"{SIZE}x{SIZE}"
    models = {"module": ModelEntry("module", "module:net", preprocessing=prep, layers=("2.0",), module=net),
              "pt2": ModelEntry("pt2", f"file:{d / 'net.pt2'}", preprocessing=prep, layers=("2.0",))}
    if _has_onnx():
        models["onnx"] = ModelEntry("onnx", f"file:{_onnx(files)}", preprocessing=prep, layers=("2/2/0/Conv",))
    sel = select(tmp_path / "data", models, n_boot=0, cache_dir=tmp_path / "cache")
    rows = {r["model"]: r for r in sel.table}
    for name in models:
        for s in sel.scorers:
            assert rows[name][s] == pytest.approx(rows["module"][s], rel=1e-4, abs=1e-6), (name, s)


def _has_onnx() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnx2torch"))


def test_torchscript_still_loads(files):
    net, d = files
    model = load_model(f"file:{d / 'net.ts'}")
    assert isinstance(model, torch.jit.ScriptModule)
    torch.testing.assert_close(model(_example()), net(_example()))


def test_fixed_batch_size_is_refused_in_one_line(files):
    _, d = files
    with pytest.raises(DeparaError, match=r"fixed.pt2: input .* has a fixed batch size 2; export it with a "
                                          r"dynamic batch axis") as err:
        load_model(f"file:{d / 'fixed.pt2'}")
    assert "\n" not in str(err.value)
    path = _onnx(files, "fixed.onnx", dynamic=False)
    with pytest.raises(DeparaError, match=r"fixed.onnx: input 'x' has a fixed batch size 2"):
        load_model(f"file:{path}")


def test_pt2_exported_in_training_mode_is_refused(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
    for mode, name in ((net.train, "train.pt2"), (net.eval, "eval.pt2")):
        mode()
        program = torch.export.export(net, (_example(),), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, tmp_path / name)
    with pytest.raises(DeparaError, match=r"train.pt2: exported in training mode \(batch norm uses the "
                                          r"batch's statistics\); export it from model.eval\(\)"):
        load_model(f"file:{tmp_path / 'train.pt2'}")
    torch.testing.assert_close(load_model(f"file:{tmp_path / 'eval.pt2'}")(_example(3)), net(_example(3)))


def test_bad_model_files_are_one_line(files, tmp_path):
    _, d = files
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    (tmp_path / "junk.onnx").write_bytes(b"\xff\x00 not protobuf")
    with pytest.raises(DeparaError, match="junk.pt2: not a torch.export program"):
        load_model(f"file:{tmp_path / 'junk.pt2'}")
    with pytest.raises(DeparaError, match="arch= and num_classes= apply to state-dict files"):
        load_model(f"file:{d / 'net.pt2'}?arch=resnet18")
    with pytest.raises(DeparaError, match="missing.pt2: not found"):
        load_exported(tmp_path / "missing.pt2")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    with pytest.raises(DeparaError, match="junk.onnx: not a readable ONNX model"):
        load_model(f"file:{tmp_path / 'junk.onnx'}")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="org.example")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("org.example", 1)])
    onnx.save(model, str(tmp_path / "mystery.onnx"))
    with pytest.raises(DeparaError, match=r"mystery.onnx: onnx2torch cannot convert it \(NotImplementedError"):
        load_model(f"file:{tmp_path / 'mystery.onnx'}")


def test_onnx_without_the_extra_says_how_to_install(files, monkeypatch):
    _, d = files
    (d / "any.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # import fails as if not installed
    with pytest.raises(DeparaError, match=r"any.onnx: ONNX models need onnx and onnx2torch; install the extra "
                                          r"with pip install \"depara\[onnx\]\""):
        load_model(f"file:{d / 'any.onnx'}")


# ------------------------------------------------------------------------------- ONNX with a fixed batch of 1
class _ConstantBatchHead(nn.Module):
    """A trunk that takes a batch image by image, then a head that reshapes to a constant batch of 1 (what a
    detector exported at batch 1 does): a batch of 2 mixes its images from the reshape on."""

    def __init__(self, head_first: bool = False):
        super().__init__()
        self.head_first = head_first
        self.conv, self.relu = nn.Conv2d(3, 4, 3), nn.ReLU()
        self.fc = nn.Linear(3 * SIZE * SIZE if head_first else 4 * (SIZE - 2) ** 2, 3)

    def forward(self, x):
        if self.head_first:
            return self.fc(x.reshape(1, -1))
        return self.fc(self.relu(self.conv(x)).reshape(1, -1))


def _export_batch_one(net: nn.Module, path, dynamic_size: bool = False):
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (_example(1),), str(path), dynamo=False, input_names=["x"], opset_version=17,
                          dynamic_axes={"x": {2: "h", 3: "w"}} if dynamic_size else None)
    return path


def test_onnx_with_a_fixed_batch_of_one_loads_when_it_takes_batches(tmp_path):
    """Batch 1 fixed, a graph that never looks at the batch: every layer usable, outputs equal the source's."""
    net = _net()
    model = load_model(f"file:{_export_batch_one(net, tmp_path / 'one.onnx')}")
    assert getattr(model, "batch_safe_layers", None) is None
    torch.testing.assert_close(model(_example(3)), net(_example(3)), rtol=1e-5, atol=1e-6)


def test_onnx_with_a_fixed_batch_of_one_is_usable_up_to_the_node_that_mixes_the_batch(tmp_path):
    from depara.extraction.extract import capture_features, resolve_layer
    from depara.extraction.layers_auto import auto_layers

    torch.manual_seed(0)
    net = _ConstantBatchHead().eval()
    model = load_model(f"file:{_export_batch_one(net, tmp_path / 'head.onnx')}")
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    bad = model.batch_unsafe_from
    assert "Reshape" in kinds[bad] or "Reshape" in bad, (bad, kinds[bad])
    relu = next(n for n in model.batch_safe_layers if "Relu" in n)
    assert relu in auto_layers(model, (3, SIZE, SIZE)) and bad not in auto_layers(model, (3, SIZE, SIZE))
    with pytest.raises(DeparaError, match=rf"layer '{re.escape(bad)}': comes at or after node .* no longer takes a "
                                          r"batch image by image"):
        resolve_layer(model, bad)
    with pytest.raises(DeparaError, match="no longer takes a batch"):
        resolve_layer(model, "output")
    # the usable layer, on a batch of 3, equals the source network's ReLU output
    got = capture_features(model, _example(3), [relu])[relu]
    torch.testing.assert_close(got, net.relu(net.conv(_example(3))), rtol=1e-5, atol=1e-6)


def test_onnx_with_a_fixed_batch_of_one_is_refused_when_nothing_takes_batches_or_the_size_is_open(tmp_path):
    first = _export_batch_one(_ConstantBatchHead(head_first=True), tmp_path / "first.onnx")
    with pytest.raises(DeparaError, match=r"first.onnx: input 'x' has a fixed batch size 1 and its first node .* "
                                          r"does not take a batch image by image; export it with a dynamic batch"):
        load_model(f"file:{first}")
    open_size = _export_batch_one(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), tmp_path / "open.onnx",
                                  dynamic_size=True)
    with pytest.raises(DeparaError, match=r"open.onnx: input 'x' has a fixed batch size 1 and no fixed image size "
                                          r"to check it at; export it with a dynamic batch axis") as err:
        load_model(f"file:{open_size}")
    assert "\n" not in str(err.value)
