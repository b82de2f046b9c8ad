"""lineside training: data sets, generators, models, the training loop and `edge-train`."""
