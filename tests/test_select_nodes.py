"""`depara.select` computes attribution maps only when a scorer with a node term is asked for; node-less graphs
live under their own cache key and give the same values for every scorer that is computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import depara  # noqa: E402
from depara.selection.job import select  # noqa: E402
from depara.extraction.zoo import ModelEntry  # noqa: E402

SIZE = 16
NODE_SCORERS = ["depara", "depara_v", "depara_e", "depara_labels", "logme"]


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(32, 3))


def _models() -> dict[str, ModelEntry]:
    return {n: ModelEntry(n, f"module:{n}", preprocessing=f"{SIZE}x{SIZE}", module=_net(s), layers=("1", "3"))
            for n, s in (("a", 0), ("b", 1))}


def _target() -> ModelEntry:
    return ModelEntry("t", "module:t", preprocessing=f"{SIZE}x{SIZE}", module=_net(7), layers=("3",))


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classes")
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir()
        for i in range(5):
            Image.fromarray((rng.random((SIZE, SIZE, 3)) * 80 + 60 * c).astype(np.uint8)).save(
                root / f"class{c}" / f"{i}.png")
    return root


def _stored_graphs(cache: Path) -> list[depara.Graph]:
    return [depara.Graph.load(p) for p in sorted((cache / "store").rglob("*.safetensors"))]


def test_default_computes_no_nodes_and_equals_the_full_run(classes, tmp_path):
    bare = select(classes, _models(), target_model=_target(), n_boot=15, peer_boot=3, cache_dir=tmp_path / "a")
    assert bare.settings["nodes"] is False
    assert "depara" not in bare.scorers and "depara_v" not in bare.scorers and "depara_e" in bare.scorers
    assert bare.scorer == "depara_labels_logme"  # labels given: the round-6 rank average ranks (frozen defaults)
    graphs = _stored_graphs(tmp_path / "a")
    assert len(graphs) == 5 and all(g.nodes.shape == (15, 0) and g.meta["nodes"] is False for g in graphs)

    full = select(classes, _models(), target_model=_target(), n_boot=15, peer_boot=3, cache_dir=tmp_path / "b",
                  scorers=NODE_SCORERS)
    assert full.settings["nodes"] is True
    assert all(g.node_size > 0 for g in _stored_graphs(tmp_path / "b"))
    assert full.candidates == bare.candidates and full.order == bare.order and full.p_best == bare.p_best
    for s in ("depara_e", "depara_labels", "logme"):
        np.testing.assert_array_equal(full.values[s], bare.values[s])
        np.testing.assert_array_equal(full.intervals[s], bare.intervals[s])
    # the node term is really there in the full run (so the comparison above is between different extractions)
    assert np.all(np.isfinite(full.values["depara_v"]))
    from depara.evaluation.rank_quality import combine
    from depara.selection.job import LAM

    np.testing.assert_allclose(full.values["depara"], combine(full.values["depara_v"], full.values["depara_e"], LAM))


def test_a_nodeless_entry_is_never_returned_for_a_nodes_request(classes, tmp_path):
    kw = dict(target_model=_target(), n_boot=0, cache_dir=tmp_path)
    select(classes, _models(), **kw)  # node-less entries only
    assert len(_stored_graphs(tmp_path)) == 5
    full = select(classes, _models(), scorers=["depara_v"], **kw)
    assert all(info["extracted"] == ["1", "3"] for info in full.models.values())  # rebuilt, not read
    assert full.settings["target_model"]["extracted"] == ["3"]
    graphs = _stored_graphs(tmp_path)
    assert len(graphs) == 10 and sum(g.node_size > 0 for g in graphs) == 5  # both kinds, side by side
    again = select(classes, _models(), **kw)  # the node-less run reads its own entries
    assert all(info["extracted"] == [] for info in again.models.values())


def test_a_full_entry_serves_a_nodeless_request(classes, tmp_path):
    kw = dict(target_model=_target(), n_boot=0, cache_dir=tmp_path)
    full = select(classes, _models(), scorers=["depara", "depara_e"], **kw)
    bare = select(classes, _models(), scorers=["depara_e"], **kw)
    assert all(info["extracted"] == [] for info in bare.models.values())
    assert bare.settings["target_model"]["extracted"] == []
    assert len(_stored_graphs(tmp_path)) == 5  # nothing new written
    np.testing.assert_array_equal(bare.values["depara_e"], full.values["depara_e"])


def test_cli_scorers_option_asks_for_the_node_term(classes, tmp_path, capsys):
    from depara.cli.main import main

    net = tmp_path / "net.pt"
    torch.jit.script(_net(0)).save(str(net))
    rc = main(["select", str(classes), "--models", f"file:{net}", "--target-model", f"file:{net}",
               "--layers", "output", "--scorers", "depara_v,depara_e", "--n-boot", "0", "--quiet",
               "--cache", str(tmp_path / "c")])
    text = capsys.readouterr().out
    assert rc == 0 and "depara_v" in text and "depara_e" in text
    graphs = _stored_graphs(tmp_path / "c")
    assert graphs and all(g.node_size > 0 for g in graphs)
