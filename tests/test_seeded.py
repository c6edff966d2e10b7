"""`--seed` seeds the random initialisation of models without weights: the same `depara select` command in two
fresh processes gives the same ranking, another seed other weights (torch seeds its RNG at random per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depara.errors import DeparaError
from depara.extraction.models import load_model, seeded
from depara.extraction.store import weights_hash

from _core_torch_helpers import write_images

SRC = str(Path(__file__).resolve().parents[1] / "src")
SPEC = "torchvision:squeezenet1_1"


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_seed_fixes_random_init_whatever_was_drawn_before_and_leaves_the_rng_alone():
    torch.manual_seed(123)
    a = _state(load_model(SPEC, seed=5))
    torch.rand(1000)  # another draw in between must not matter
    b = _state(load_model(SPEC, seed=5))
    c = _state(load_model(SPEC, seed=6))
    assert _same(a, b) and not _same(a, c)
    from torchvision.models import get_model

    torch.manual_seed(5)
    assert _same(a, _state(get_model("squeezenet1_1", weights=None).eval()))
    torch.manual_seed(7)  # the caller's stream is unchanged by a seeded load
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_model(SPEC, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_seeded_rejects_a_bad_seed():
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(DeparaError, match="seed: expected an integer >= 0"):
            with seeded(bad):
                pass


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeded")
    for c in range(3):
        write_images(root / "data" / f"class{c}", [f"{i}.png" for i in range(4)], size=(32, 32), seed=c)
    (root / "zoo.toml").write_text("".join(
        f'[[model]]\nname = "{name}"\nspec = "{SPEC}"\nweights = "none"\npreprocessing = "32x32"\n'
        f'layers = ["features.3", "features.6"]\n\n' for name in ("sq_a", "sq_b")))
    return root


def _select_all(case: Path, runs: dict[str, int]) -> dict[str, tuple[str, set[str]]]:
    """`depara select` in fresh Python processes (run side by side), one cache each: {tag: (stdout, the names of
    the store's entries)}. The entries are content-addressed by the model's weights hash, the layer, the probes
    and the options, so equal names mean equal weights."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg", COLUMNS="200")
    procs = {tag: subprocess.Popen([sys.executable, "-m", "depara.cli.main", "select", str(case / "data"), "--zoo",
                                    str(case / "zoo.toml"), "--seed", str(seed), "--n-boot", "20", "--quiet",
                                    "--cache", str(case / f"cache-{tag}")],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag, seed in runs.items()}
    out = {}
    for tag, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        out[tag] = (stdout, {p.name for p in (case / f"cache-{tag}" / "store").rglob("*") if p.is_file()})
    return out


@pytest.mark.slow
def test_same_seed_same_ranking_in_fresh_processes(case):
    runs = _select_all(case, {"first": 0, "again": 0})
    (first, keys_first), (again, keys_again) = runs["first"], runs["again"]
    assert "pick model" in first and first == again  # the same table, numbers and pick
    assert keys_first and keys_first == keys_again  # the same weights: the same store entries


def test_select_seed_sets_the_weights_of_models_without_weights(case, tmp_path):
    from depara.selection import select

    runs = {seed: select(case / "data", str(case / "zoo.toml"), seed=seed, n_boot=0, cache_dir=tmp_path)
            for seed in (0, 1)}
    hashes = {seed: {m: info["weights_hash"] for m, info in sel.models.items()} for seed, sel in runs.items()}
    assert hashes[0]["sq_a"] == hashes[0]["sq_b"]  # same architecture, same seed: the same weights
    assert hashes[0]["sq_a"] != hashes[1]["sq_a"]
    torch.manual_seed(99)  # whatever the global RNG state
    assert hashes[0]["sq_a"] == weights_hash(load_model(SPEC, seed=0))  # as the model loader builds it
