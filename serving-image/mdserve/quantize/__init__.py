"""Quantization: TF/Keras → TFLite (dynamic, float16, int8) and sklearn → ONNX (optionally int8),
with a report of size, latency and agreement against the original on held-out rows."""
