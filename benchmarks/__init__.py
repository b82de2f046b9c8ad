"""lineside benchmarks: torch vs ONNX Runtime latency, reports and `edge-bench`."""
