"""lineside's edge runtime: load a self-describing ONNX artifact and decide on frames.

This package is the bottom floor of lineside. It imports numpy, opencv,
onnxruntime, click and the standard library only — never torch — so a line PC
can run it without the training stack.
"""

__version__ = "0.1.0"
