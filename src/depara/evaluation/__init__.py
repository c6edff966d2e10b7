"""How good a ranking is against measured ground truth: rank quality (Kendall τ, P@K / R@K, pick, regret),
bootstrap intervals (:mod:`~depara.evaluation.rank_quality`), and the numbers the DEPARA paper published
(:mod:`~depara.evaluation.published`). numpy/scipy only."""
