"""The torch layer: models and model files, zoo files, layer choice, probe sets, DEPARA graphs and features of
PyTorch models (Captum attributions), the verified store of graphs and features, and the extraction engines
(local | Ray)."""
