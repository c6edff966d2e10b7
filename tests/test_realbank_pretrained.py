"""Pretrained sources of the real-image bank (optional extra ``depara[bank]``; each test skips without its package).

Each source family is checked against something independent of our loader: the ONNX sources against the
package's own runtime (onnxruntime) on the same input; the ImageNet sources, whose packages ship weights without a
runtime of their own, against what their weights must do (torchvision's published file hash; the ImageNet class
of scikit-image's cat and coffee photos); CRAFT's backbone by a strict load that uses every tensor it names.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from depara.errors import DeparaError
from depara.benches.realbank import pretrained as P

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


def _need(name: str) -> P.PretrainedSource:
    spec = P.get_source(name)
    if not P.available(spec):
        pytest.skip(f"{spec.package} not installed")
    return spec


def _photos() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(getattr(skimage_data, n)()).resize((256, 256))) / 255.0
                     for n in ("chelsea", "coffee")]).astype(np.float32)


@pytest.mark.parametrize("name", ["pplcnet-doc-orientation", "yolox-captcha-det"])
def test_onnx_source_equals_onnxruntime(name):
    spec = _need(name)
    ort = pytest.importorskip("onnxruntime")
    model = P.load_source(name)
    x = P.preprocess(spec, np.random.default_rng(0).random((1, 48, 40, 3), dtype=np.float32))
    session = ort.InferenceSession(str(P.weight_file(spec)), providers=["CPUExecutionProvider"])
    (expected, *_) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        got = model(x)
    got = (got[0] if isinstance(got, (tuple, list)) else got).numpy()
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 1e-3 * scale  # float32 round-off is ~1e-6 of the scale


@pytest.mark.parametrize("name", ["mobilenet_v2-imagenet", "efficientnet_lite1-imagenet",
                                  "efficientnet_lite2-imagenet"])
def test_imagenet_sources_name_the_photos(name):
    spec = _need(name)
    model = P.load_source(name)
    with torch.no_grad():
        top5 = model(P.preprocess(spec, _photos())).topk(5).indices.tolist()
    assert top5[0][0] in CATS and top5[1][0] in COFFEE


def test_mobilenet_weights_are_torchvisions_file():
    spec = _need("mobilenet_v2-imagenet")
    digest = hashlib.sha256(P.weight_file(spec).read_bytes()).hexdigest()
    assert digest.startswith("b0353104")  # the hash torchvision publishes in the file name


def test_craft_backbone_uses_every_basenet_tensor():
    spec = _need("craft-vgg16bn-text")
    state = torch.load(P.weight_file(spec), map_location="cpu", weights_only=True)
    body = P.craft_backbone(state)
    want = {k for k in state if k.startswith("module.basenet.slice") and ".slice5." not in k}
    assert len(body.state_dict()) == len(want)
    w = state["module.basenet.slice3.24.weight"]
    assert torch.equal(body.features[24].weight, w)


def test_efficientnet_mapping_refuses_a_wrong_checkpoint():
    pytest.importorskip("timm")
    with pytest.raises(DeparaError, match="efficientnet lite1"):
        P.efficientnet_lite_from_lukemelas({"_conv_stem.weight": torch.zeros(1)}, "lite1")


def test_layer_features_are_pooled_layer_outputs():
    spec = _need("mobilenet_v2-imagenet")
    model = P.load_source(spec.name)
    images = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32)
    feats = P.layer_features(spec, model, images, batch_size=2)
    assert list(feats) == list(spec.layers)
    with torch.no_grad():
        direct = model.features[:4](P.preprocess(spec, images)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(feats["features.3"], direct, rtol=1e-5, atol=1e-6)


def test_layer_features_layout_and_batch_size_do_not_change_the_features():
    """The bank's fast path (channels-last, batches of BATCH_SIZE with a ragged tail) gives the previous round's
    contiguous, one-batch features up to float round-off, in the same image order."""
    spec = _need("mobilenet_v2-imagenet")
    images = np.random.default_rng(2).random((P.BATCH_SIZE + 1, 24, 24, 3), dtype=np.float32)
    fast = P.layer_features(spec, P.load_source(spec.name), images)
    plain = P.layer_features(spec, P.load_source(spec.name), images, batch_size=32, channels_last=False)
    for layer in spec.layers:
        assert fast[layer].shape == plain[layer].shape == (len(images), plain[layer].shape[1])
        np.testing.assert_allclose(fast[layer], plain[layer], rtol=1e-4, atol=1e-4)
    assert not np.allclose(fast["features.18"][0], fast["features.18"][-1])  # distinct images stay distinct


def test_preprocess_by_hand():
    spec = P.PretrainedSource("t", "p", "f", "a", "d", "l", 4, ("x",), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.25),
                              scale=2.0, bgr=True)
    img = np.zeros((1, 8, 8, 3), dtype=np.float32)
    img[..., 0] = 0.25  # red
    x = P.preprocess(spec, img)
    assert x.shape == (1, 3, 4, 4)
    # channels B, G, R: (0*2-0.1)/0.5, (0*2-0.2)/0.5, (0.25*2-0.3)/0.25
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-0.2, -0.4, 0.8], atol=1e-6)


def test_unknown_source_and_missing_package():
    with pytest.raises(DeparaError, match="unknown pretrained source"):
        P.get_source("nope")
    with pytest.raises(DeparaError, match="not installed"):
        P.package_dir("no-such-package-here")

