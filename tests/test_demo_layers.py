"""`depara demo layers --scale tiny`: the whole syn2real layer-selection chain on synth-digits, end to end."""

from __future__ import annotations

import json

import pytest
import torch

from depara.io.files import read_csv
from depara.cli.main import main


@pytest.mark.slow
def test_demo_layers_tiny_end_to_end(depara_cache, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert main(["demo", "layers", "--scale", "tiny", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "layers-select"
    assert manifest["settings"]["scale"] == "tiny" and manifest["settings"]["seed"] == 0
    for name in manifest["tables"].values():
        assert (out / name).is_file(), name
    assert (out / manifest["figures"]["layers"]).stat().st_size > 10_000
    scores = read_csv(out / "layer_scores.csv")
    transfer = read_csv(out / "transfer_tenth.csv")
    assert [int(r["depth"]) for r in scores] == [int(r["depth"]) for r in transfer] == list(range(1, 11))
    assert [float(r["acc_tenth"]) for r in scores] == [float(r["test_acc"]) for r in transfer]
    assert len(read_csv(out / "correlations.csv")) == 4
    assert len(read_csv(out / "train_synthetic_log.csv")) == 4
    assert manifest["summary"] in capsys.readouterr().out

    # second run: the cached models and transfer results are reused, a corrupt entry is rebuilt
    cache = next((depara_cache / "layers_demo").glob("tiny-seed0-*"))
    source_mtime = (cache / "run_synthetic" / "resume.pt").stat().st_mtime_ns
    transfer_mtime = (cache / "transfer_tenth_seed0" / "transfer.csv").stat().st_mtime_ns
    (cache / "run_real" / "resume.pt").write_bytes(b"corrupt")
    out2 = tmp_path / "demo2"
    assert main(["demo", "layers", "--scale", "tiny", "--out", str(out2), "--quiet"]) == 0
    assert (cache / "run_synthetic" / "resume.pt").stat().st_mtime_ns == source_mtime
    assert (cache / "transfer_tenth_seed0" / "transfer.csv").stat().st_mtime_ns == transfer_mtime
    assert read_csv(out2 / "transfer_tenth.csv") == transfer
    # the rebuilt target model is the same deterministic run, so the scores are unchanged
    again = read_csv(out2 / "layer_scores.csv")
    assert [float(r["V"]) for r in again] == pytest.approx([float(r["V"]) for r in scores], abs=1e-6)
    from depara.errors import DeparaError
    from depara.benches.layers import run_layers_demo

    with pytest.raises(DeparaError, match="scale 'huge'"):
        run_layers_demo("huge", tmp_path / "x")
