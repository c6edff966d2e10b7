"""Figures, one module per owner: ranking (PR curve, P@K, lambda sweep, tree, heatmap, ranking bars), layers,
harness, taskbank. matplotlib with the Agg backend; every figure is saved atomically."""
