"""lineside export: torch → ONNX, metadata, INT8 quantization, parity gate and `edge-export`."""
