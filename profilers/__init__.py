"""Measurement backends (ONNX Runtime, PyTorch, Core ML) and device descriptions.

Profilers write latency/memory tables that ``nas`` reads; ``nas`` never imports this package
at import time. The backends and ``profilers/devices/*.yaml`` arrive with ``nas profile``.
"""
