"""A candidate model that fails stops `depara select` with its error in one line, on either engine; only when
asked (`--skip-failed` / `skip_failed=True`) is it left out, and then named in the summary sentence, the report
and the settings: never a silently shorter table. The Ray cases are marked `ray` and skip without Ray."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from depara.cli.main import main
from depara.errors import DeparaError
from depara.selection import select
from depara.extraction.zoo import ModelEntry

from _core_torch_helpers import write_images

SIZE = 16


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 3))


def _models() -> dict[str, ModelEntry]:
    good = {n: ModelEntry(n, f"module:{n}", preprocessing=f"{SIZE}x{SIZE}", module=_net(i)) for i, n in
            enumerate(("a", "b"))}
    bad = ModelEntry("bad", "module:bad", preprocessing=f"{SIZE}x{SIZE}", module=_net(2), layers=("no_such",))
    return {**good, "bad": bad}


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classes")
    for c in range(3):
        write_images(root / f"class{c}", [f"{i}.png" for i in range(4)], size=(SIZE, SIZE), seed=c)
    return root


def _check_skipped(sel, reference) -> None:
    assert sel.candidates == reference.candidates  # the others, ranked as without the failed model
    for s in reference.scorers:
        np.testing.assert_allclose(sel.values[s], reference.values[s], rtol=1e-6, equal_nan=True)
    assert list(sel.settings["skipped_models"]) == ["bad"] and "no_such" in sel.settings["skipped_models"]["bad"]
    assert sel.summary.endswith(f"; skipped 1 candidate model(s) that failed: bad "
                                f"({sel.settings['skipped_models']['bad']})")


def test_local_failed_candidate_stops_the_run_or_is_skipped_and_reported(classes, tmp_path):
    models = _models()
    reference = select(classes, {k: models[k] for k in ("a", "b")}, n_boot=10, cache_dir=tmp_path)
    with pytest.raises(DeparaError, match=r"^model bad: layer 'no_such': no module of that name") as err:
        select(classes, models, n_boot=10, cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    sel = select(classes, models, n_boot=10, cache_dir=tmp_path, skip_failed=True)
    _check_skipped(sel, reference)
    files = sel.report(tmp_path / "out")
    assert "skipped 1 candidate model(s) that failed: bad" in Path(files.markdown).read_text()
    assert "skipped 1 candidate model(s) that failed: bad" in Path(files.html).read_text()
    with pytest.raises(DeparaError, match="models: every candidate model failed; first: model bad"):
        select(classes, {"bad": models["bad"]}, n_boot=0, cache_dir=tmp_path, skip_failed=True)
    with pytest.raises(DeparaError, match="skip_failed: expected True or False"):
        select(classes, models, cache_dir=tmp_path, skip_failed="yes")


def test_cli_failed_model_names_the_flag_and_skip_failed_reports_it(classes, tmp_path, capsys):
    d = tmp_path / "nets"
    d.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_net(0)).save(str(d / "good.pt"))
    (d / "broken.pt").write_bytes(b"not a model")
    args = ["select", str(classes), "--models", f"file:{d / 'good.pt'},file:{d / 'broken.pt'}", "--n-boot", "5",
            "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "broken.pt" in err and err.endswith("pass --skip-failed to rank the others "
                                                                         "without it")
    assert main([*args, "--skip-failed", "--out", str(tmp_path / "out")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped 1 candidate model(s) that failed: broken" in out
    report = (tmp_path / "out" / "report.md").read_text()
    assert "skipped 1 candidate model(s) that failed: broken" in " ".join(report.split())


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_ray_failed_candidate_stops_the_run_or_is_skipped_and_reported(classes, tmp_path):
    ray = pytest.importorskip("ray")
    src = str(Path(__file__).resolve().parents[1] / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    models = _models()
    reference = select(classes, {k: models[k] for k in ("a", "b")}, n_boot=10, cache_dir=tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with pytest.raises(DeparaError, match=r"^model bad: .*no_such.*pass skip_failed=True") as err:
            select(classes, models, n_boot=10, cache_dir=tmp_path / "ray", engine="ray")
        assert "\n" not in str(err.value)
        sel = select(classes, models, n_boot=10, cache_dir=tmp_path / "ray", engine="ray", skip_failed=True)
    finally:
        ray.shutdown()
    _check_skipped(sel, reference)
