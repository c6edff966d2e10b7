"""`depara layers` and `depara extract` end to end on tiny models and images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from depara.cli.main import main
from depara.extraction.extract import build_graph
from depara.core.graph import Graph
from depara.extraction.probes import ProbeSet

from _core_torch_helpers import tiny_vgg, write_images

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(tiny_vgg()), str(path))
    return path


@pytest.fixture(scope="module")
def state_file(tmp_path_factory):
    """A squeezenet1_1 state dict with a 3-class head (a torchvision architecture, small)."""
    from depara.extraction.models import load_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "sq.pt"
    torch.save(load_model("torchvision:squeezenet1_1", num_classes=3).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("probes")
    write_images(root, [f"c{i % 2}/img{i}.png" for i in range(6)], size=(40, 36))
    return root


def test_layers_lists_names_and_shapes(state_file, capsys):
    assert main(["layers", f"file:{state_file}?arch=squeezenet1_1", "--input-size", "3", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "64 × 31 × 31" in out and "classifier.1" in out
    # the auto candidates (squeezenet: the trunk's Fire modules, evenly spaced) are marked, the stem is not
    from depara.extraction.layers_auto import auto_layers
    from depara.extraction.models import load_model

    auto = auto_layers(load_model(f"file:{state_file}?arch=squeezenet1_1"), (3, 64, 64))
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert [n for n, line in rows.items() if line.rstrip().rstrip("│").strip().endswith("auto")] == auto
    assert auto and "features.0" not in auto


def test_extract_one_layer_matches_the_library(state_file, probe_dir, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    code = main(["extract", f"file:{state_file}?arch=squeezenet1_1", "--probes", str(probe_dir), "--layer",
                 "features.4", "--preprocess", "48x48", "--node-size", "12", "--batch-size", "4", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    g = Graph.load(out)
    from depara.extraction.models import load_model

    expected = build_graph(load_model(f"file:{state_file}?arch=squeezenet1_1"),
                           ProbeSet.from_folder(probe_dir, preprocess="48x48"), "features.4", node_size=12)
    np.testing.assert_allclose(g.nodes, expected.nodes, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(g.edges, expected.edges, atol=1e-6)
    assert g.probe_ids == tuple(sorted(g.probe_ids)) and g.probe_ids[0] == "c0/img0.png"
    assert g.meta["model"].startswith("file:") and g.meta["layer"] == "features.4"


def test_extract_several_layers_to_a_folder_with_a_list(state_file, probe_dir, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("c1/img3.png\nc0/img0.png 0\nc1/img1.png\n")
    out = tmp_path / "graphs"
    code = main(["extract", f"file:{state_file}?arch=squeezenet1_1", "--probes", str(lst), "--root", str(probe_dir),
                 "--layer", "features.2", "--layer", "classifier", "--method", "saliency", "--scalar", "l2",
                 "--channel-reduction", "abs_mean", "--preprocess", "32x32", "--node-size", "0",
                 "--feature-memory-mb", "0", "--out", str(out)])  # features through the on-disk store
    assert code == 0
    a = Graph.load(out / "features.2.safetensors")
    b = Graph.load(out / "classifier.safetensors")
    assert a.probe_ids == b.probe_ids == ("c1/img3.png", "c0/img0.png", "c1/img1.png")
    assert a.nodes.shape == (3, 32 * 32) and a.meta["method"] == "saliency" and a.meta["scalar"] == "l2"
    assert (a.nodes >= 0).all()
    from depara.extraction.models import load_model

    expected = build_graph(load_model(f"file:{state_file}?arch=squeezenet1_1"),
                           ProbeSet.from_list(lst, root=probe_dir, preprocess="32x32"), "features.2",
                           method="saliency", scalar="l2", channel_reduction="abs_mean")
    np.testing.assert_allclose(a.edges, expected.edges, atol=1e-6)


def test_extract_torchscript_output(model_file, probe_dir, tmp_path):
    out = tmp_path / "ts.safetensors"
    assert main(["extract", f"file:{model_file}", "--probes", str(probe_dir), "--layer", "output",
                 "--preprocess", "32x32", "--out", str(out)]) == 0
    assert Graph.load(out).nodes.shape == (6, 56 * 56)


# ------------------------------------------------------------------------------------------- bad input
def _run_err(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_unknown_layer_and_model(state_file, probe_dir, tmp_path, capsys):
    err = _run_err(["extract", f"file:{state_file}?arch=squeezenet1_1", "--probes", str(probe_dir),
                    "--layer", "feature.4", "--out", str(tmp_path / "g.safetensors")], capsys)
    assert "did you mean features.4" in err
    err = _run_err(["layers", "torchvision:squeezenet1_2"], capsys)
    assert "did you mean" in err and "squeezenet1_1" in err


def test_output_in_a_missing_folder_fails_before_extraction(state_file, probe_dir, tmp_path, capsys, monkeypatch):
    import depara.extraction.extract

    monkeypatch.setattr(depara.extraction.extract, "build_graphs", lambda *a, **k: pytest.fail("extraction ran"))
    err = _run_err(["extract", f"file:{state_file}?arch=squeezenet1_1", "--probes", str(probe_dir),
                    "--layer", "features.2", "--out", str(tmp_path / "nope" / "g.safetensors")], capsys)
    assert "folder" in err and "nope" in err


def test_bad_probes(state_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = ["extract", f"file:{state_file}?arch=squeezenet1_1", "--layer", "features.2",
            "--out", str(tmp_path / "g.safetensors"), "--probes"]
    assert "empty probe set" in _run_err(args + [str(tmp_path / "empty")], capsys)
    assert "no such folder or image-list file" in _run_err(args + [str(tmp_path / "missing")], capsys)
    write_images(tmp_path / "bad", ["a.png", "b.png", "c.png"])
    (tmp_path / "bad" / "b.png").write_bytes(b"not a png")
    assert "probe b.png" in _run_err(args + [str(tmp_path / "bad")], capsys)


def test_interrupted_extraction_leaves_no_file(state_file, probe_dir, tmp_path, monkeypatch):
    """Ctrl-C during extraction, or a crash while writing, leaves nothing under the output name."""
    import depara.extraction.extract
    import depara.core.graph

    out = tmp_path / "g.safetensors"
    args = ["extract", f"file:{state_file}?arch=squeezenet1_1", "--probes", str(probe_dir), "--layer", "features.2",
            "--preprocess", "32x32", "--out", str(out)]
    real_scalar = depara.extraction.extract._scalar
    calls = []

    def interrupt_on_second_batch(output, scalar):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_scalar(output, scalar)

    monkeypatch.setattr(depara.extraction.extract, "_scalar", interrupt_on_second_batch)
    # (the exit code of an interrupted run is the entry point's business, cli/main.py; here: no file)
    main(args + ["--batch-size", "3"])
    assert len(calls) == 2  # interrupted in the second batch
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(depara.extraction.extract, "_scalar", real_scalar)

    def crash_mid_write(tensors, filename, metadata=None):
        calls.append(filename)
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(depara.core.graph, "_write_safetensors", crash_mid_write)  # graph.py writes the file itself
    main(args)
    assert len(calls) == 3  # the writer was reached
    assert list(tmp_path.iterdir()) == []


def test_extract_on_real_photos_from_an_image_list(shared_data, model_file, tmp_path):
    """Eight VisDA real photos through the original's list format, graph of a TorchScript model's output."""
    folder = shared_data / "visda_real_probe200"
    if not (folder / "imlist_200.txt").is_file():
        pytest.skip("visda_real_probe200 not in shared data")
    entries = (folder / "imlist_200.txt").read_text().split()[::25]
    lst = tmp_path / "imlist_8.txt"
    lst.write_text("\n".join(entries) + "\n")
    out = tmp_path / "real.safetensors"
    assert main(["extract", f"file:{model_file}", "--probes", str(lst), "--root", str(folder), "--layer", "output",
                 "--preprocess", "32x32:0.5:0.25", "--node-size", "16", "--out", str(out)]) == 0
    g = Graph.load(out)
    assert g.probe_ids == tuple(entries) and g.nodes.shape == (8, 256)
    assert np.isfinite(g.edges).all() and g.edges.std() > 0


def test_layers_prints_a_model_path_with_markup_as_given(state_file, tmp_path, capsys):
    import shutil

    odd = tmp_path / "net[red].pt"
    shutil.copyfile(state_file, odd)
    assert main(["layers", f"file:{odd}?arch=squeezenet1_1", "--input-size", "3", "64", "64"]) == 0
    out = "".join(capsys.readouterr().out.split())  # the title may wrap anywhere
    assert "net[red].pt" in out and "features.0" in out
