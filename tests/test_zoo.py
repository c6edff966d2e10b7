"""The zoo file reader, model specs on the command line, and the documented auto layers."""

from __future__ import annotations

import pytest

from depara.errors import DeparaError
from depara.extraction.zoo import ModelEntry, parse_model_specs, read_zoo

GOOD = """
[[model]]
name = "a"
spec = "torchvision:resnet18"
weights = "none"
preprocessing = "32x32:0.5:0.5"
layers = ["layer3", "layer4"]

[[model]]
name = "b"
spec = "file:nets/b.pt"
"""


def test_read_zoo_fields_defaults_and_relative_paths(tmp_path):
    zoo = tmp_path / "zoo.toml"
    zoo.write_text(GOOD)
    a, b = read_zoo(zoo)
    assert a == ModelEntry(name="a", spec="torchvision:resnet18", weights=None, preprocessing="32x32:0.5:0.5",
                           layers=("layer3", "layer4"))
    assert b.spec == f"file:{tmp_path.resolve() / 'nets' / 'b.pt'}"
    assert b.layers == "auto" and b.weights is None and b.preprocessing is None
    assert a.preprocess().size == (32, 32)


@pytest.mark.parametrize("text, message", [
    ('[[model]]\nspec = "torchvision:resnet18"\n', "entry 1: missing field 'name'"),
    ('[[model]]\nname = "a"\n', "entry 1 ('a'): missing field 'spec'"),
    ('[[model]]\nname = "a"\nspec = "torchvision:resnet18"\n[[model]]\nname = "a"\nspec = "timm:resnet18"\n',
     "entry 2 ('a'): duplicate name 'a'"),
    ('[[model]]\nname = "a"\nspec = "torchvision:resnet18"\nlayer = ["x"]\n', "unknown field 'layer'"),
    ('[[model]]\nname = "a"\nspec = "tv:resnet18"\n', "unknown source"),
    ('[[model]]\nname = "a"\nspec = "torchvision:resnet18"\nlayers = "some"\n', "field 'layers'"),
    ('[[model]]\nname = "a"\nspec = "torchvision:resnet18"\npreprocessing = "big"\n', "preprocess"),
    ('[[model]]\nname = 3\nspec = "torchvision:resnet18"\n', "field 'name' must be a string"),
    ("models = 3\n", "unknown top-level key 'models'"),
    ("[[model]\n", "not valid TOML"),
])
def test_bad_zoo_files_one_line_naming_file_and_entry(tmp_path, text, message):
    zoo = tmp_path / "zoo.toml"
    zoo.write_text(text)
    with pytest.raises(DeparaError) as err:
        read_zoo(zoo)
    assert message in str(err.value) and str(zoo) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_zoo_file(tmp_path):
    with pytest.raises(DeparaError, match="zoo file .*: not found"):
        read_zoo(tmp_path / "nope.toml")


def test_parse_model_specs_weights_and_names():
    entries = parse_model_specs("torchvision:resnet18@DEFAULT, timm:resnet18,file:/x/net.pt?arch=vgg11")
    assert [(e.name, e.spec, e.weights) for e in entries] == [
        ("resnet18", "torchvision:resnet18", "DEFAULT"), ("resnet18#2", "timm:resnet18", None),
        ("net", "file:/x/net.pt?arch=vgg11", None)]
    with pytest.raises(DeparaError, match="unknown source"):
        parse_model_specs("resnet:18")
    with pytest.raises(DeparaError, match="no model spec"):
        parse_model_specs(" , ")


def test_torchvision_weights_bring_their_own_preprocessing():
    pytest.importorskip("torchvision")
    e = parse_model_specs("torchvision:resnet18@IMAGENET1K_V1")[0]
    p = e.preprocess()
    assert p.size == (224, 224) and p.resize == 256 and p.center_crop
    assert parse_model_specs("torchvision:resnet18")[0].preprocess().name == "imagenet"


def test_auto_layers_per_family():
    tvm = pytest.importorskip("torchvision.models")
    from depara.extraction.layers_auto import auto_layers, family

    assert auto_layers(tvm.resnet18()) == ["layer1", "layer2", "layer3", "layer4"]
    vgg = tvm.vgg11_bn()
    assert family(vgg) == "vgg"
    assert auto_layers(vgg) == ["features.3", "features.7", "features.14", "features.21", "features.28"]
    mb = auto_layers(tvm.mobilenet_v2())
    assert len(mb) == 8 and mb[0] == "features.1" and mb[-1] == "features.18"
    assert auto_layers(tvm.efficientnet_b0()) == [f"features.{i}" for i in range(1, 9)]
    timm = pytest.importorskip("timm")
    assert auto_layers(timm.create_model("deit_tiny_patch16_224")) == ["blocks.2", "blocks.5", "blocks.8",
                                                                      "blocks.11"]
