"""Benches with measured ground truth, and the demo: Taskonomy (published formats), the procedural task bank
(:mod:`~depara.benches.taskbank`), the real-image bank (:mod:`~depara.benches.realbank`), the synthetic→real
layer-selection experiment (:mod:`~depara.benches.layers`), the data preparation they share
(:mod:`~depara.benches.data`) and ``depara demo`` (:mod:`~depara.benches.demo`)."""
