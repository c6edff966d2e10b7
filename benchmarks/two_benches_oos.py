"""Round 6's default beside rounds 4 and 5 on the benches it was not chosen on: a table from committed results.

    python benchmarks/two_benches_oos.py [--out benchmarks/results/default_choice_two_benches/out_of_sample.md]

Reads (run them first: ``nice -n 10 python benchmarks/taskbank_labels_oos.py --cache DIR`` and
``python benchmarks/layers_peers_rescore.py --cache DIR``):

- the task bank's 2 classification targets, ``benchmarks/results/taskbank_default/labels_oos.csv`` (every row);
- the pretrained bank under fine-tune truth (``benchmarks/results/pretrained_bank_finetune/per_target.csv``, built by
  ``benchmarks/pretrained_finetune.py`` on another branch: read as committed at ``--finetune-commit``; it took no
  part in the choice and was not seen before it): model weighted τ per target of every candidate, paired bootstrap
  differences over its 9 targets;
- the synthetic→real layer bench at 1/10 of the target data,
  ``benchmarks/results/layers_small_peers/peer_evaluation_tenth.csv`` (scored with today's defaults, so its
  rank-average row is round 6's), and the same file as committed at ``--round5-commit`` for the round-5 rows (the
  only rows a change of default changes: the member ``depara_labels`` and the shipped rank average).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from depara.io.readers import parse_csv_rows

ROOT = Path(__file__).resolve().parents[1]
LAYERS = "benchmarks/results/layers_small_peers/peer_evaluation_tenth.csv"
TASKBANK = "benchmarks/results/taskbank_default/labels_oos.csv"
FINETUNE = "benchmarks/results/pretrained_bank_finetune/per_target.csv"
#: fine-tune rows: candidate (the pretrained bank's name) → its name in the table; the first is round 6's default
FINETUNE_ROWS = {"DEPARA-label [knn k=10, centred] + LogME @ last": "round-6 default (knn k=10, centred + LogME; last)",
                 "DEPARA-label [knn k=10, centred] @ last": "round-6 member alone",
                 "DEPARA-label [knn k=√N, standardised] + PED @ below": "round-5 default (knn k=√N, standardised + "
                                                                       "PED; below)",
                 "DEPARA-label [per_probe, centred] @ below": "round-4 member (per probe, centred; below)",
                 "LogME @ last": "LogME @ last", "LogME @ below": "LogME @ below",
                 "k-NN accuracy @ last": "k-NN accuracy @ last"}
#: layer-bench row → (its name in the table, the results' revision: None = the working tree, else round 5's)
LAYER_ROWS = (("depara_labels_logme", "round-6 default: depara_labels_logme (kNN k=10 member + LogME)", None),
              ("depara_labels", "round-6 member alone (kNN k=10, pooled, centred)", None),
              ("depara_labels_ped", "round-5 default: depara_labels_ped (kNN k=√N member + PED)", "r5"),
              ("depara_labels", "round-5 member alone (kNN k=√N, pooled, standardised)", "r5"),
              ("depara_labels (round 4: per probe, flat, centred)", "round-4 default's member (per probe, flat, "
                                                                     "centred)", None),
              ("logme", "LogME", None), ("ped", "PED", None), ("knn", "k-NN accuracy, leave-one-out, k = 5", None),
              ("another transfer seed (noise ceiling)", "another transfer seed (noise ceiling)", None))


def read_rows(path: str, commit: str | None = None) -> list[dict]:
    """The rows of a committed CSV, from the working tree or as committed at ``commit``."""
    text = (subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout if commit else (ROOT / path).read_text(encoding="utf-8"))
    header, *body = parse_csv_rows(text, path)
    return [dict(zip(header, row)) for row in body]


def finetune_lines(rows: list[dict], commit: str) -> list[str]:
    """The fine-tune section: each row's mean model weighted τ and regret over targets with 95 % bootstrap
    intervals, and round 6's default minus each (paired over targets)."""
    import numpy as np

    from depara.benches.realbank.evaluation import bootstrap_mean, paired_difference

    by = {c: sorted((r for r in rows if r["candidate"] == c), key=lambda r: r["target"]) for c in FINETUNE_ROWS}
    vals = {c: {m: np.array([float(r[m]) for r in rs]) for m in ("model_wtau", "model_regret")} for c, rs in by.items()}
    first = next(iter(FINETUNE_ROWS))
    ci = lambda t: f"{t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}]"  # noqa: E731
    out = ["", f"## Pretrained bank, fine-tune truth (9 targets, 6 sources; `{FINETUNE}` at commit {commit})", "",
           "Not seen before the choice; the pretrained bank's scores are the same ones the rule read (linear-probe "
           "truth there), so the targets and sources are the choice's own, only the truth differs. Means over "
           "targets with 95 % bootstrap intervals; the paired column is round 6's default minus the row.", "",
           "| scorer | models: weighted τ | models: regret (points) | round 6 minus it: weighted τ |",
           "|---|---|---|---|"]
    rng = np.random.default_rng(64)
    for c, name in FINETUNE_ROWS.items():
        w, r = bootstrap_mean(vals[c]["model_wtau"], rng), bootstrap_mean(vals[c]["model_regret"], rng)
        diff = None if c == first else paired_difference(vals[first]["model_wtau"], vals[c]["model_wtau"], rng)
        d = "" if diff is None else "{:+.2f} [{:+.2f}, {:+.2f}]".format(*diff)
        out.append(f"| {name} | {ci(w)} | {ci(r)} | {d} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks/results/default_choice_two_benches/out_of_sample.md")
    ap.add_argument("--round5-commit", default="49b7d75", help="a commit whose layer-bench rescore is round 5's")
    ap.add_argument("--finetune-commit", default="abcc1a9",
                    help="a commit holding benchmarks/results/pretrained_bank_finetune ('' to leave it out)")
    args = ap.parse_args(argv)
    now, r5 = ({r["method"]: r for r in read_rows(LAYERS, c)} for c in (None, args.round5_commit))
    tb = read_rows(TASKBANK)
    f = lambda v, d=2: "" if v in ("", None) else f"{float(v):.{d}f}"  # noqa: E731
    lines = ["# Round 6's default out of sample (beside rounds 4 and 5)", "",
             "The task bank and the layer bench took no part in the round-6 choice, but both were SEEN in the "
             "previous session for the round-5 default, its kNN member, LogME, PED and k-NN accuracy (RULE.md), so "
             "they are not clean out-of-sample evidence. Two targets and one run each: no interval is given; read "
             "them as anecdotes. The pretrained bank under fine-tune truth (last section) was not seen before. "
             "Generated by `python benchmarks/two_benches_oos.py`.", "",
             "## Task bank, the 2 classification targets (count, shape)", "",
             "| scorer | mean Spearman | mean weighted τ | P@1 | top-1 regret | Spearman per target | note |",
             "|---|---|---|---|---|---|---|"]
    for r in tb:
        lines.append(f"| {r['method']} | {f(r['mean_spearman'])} | {f(r['mean_weighted_tau'])} | {f(r['P@1'])} | "
                     f"{f(r['top1_regret'], 3)} | {r['spearman_per_target']} | {r['note']} |")
    lines += ["", "## Synthetic→real layer bench, 1/10 of the target data (18 depths; first run)", "",
              "| scorer | Kendall τ | weighted τ | picked depth | accuracy lost by the pick |",
              "|---|---|---|---|---|"]
    for key, name, rev in LAYER_ROWS:
        r = (r5 if rev else now)[key]
        lines.append(f"| {name} | {f(r['kendall'])} | {f(r['weighted_tau'])} | {r['pick_depth']} | "
                     f"{f(r['regret'], 3)} |")
    lines += ["", f"Round-5 rows: `{LAYERS}` at commit {args.round5_commit}; the other rows are unchanged between "
              "the two rescorings. At 1/100 of the data neither labels default is defined (one image per class)."]
    if args.finetune_commit:
        lines += finetune_lines(read_rows(FINETUNE, args.finetune_commit), args.finetune_commit)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
