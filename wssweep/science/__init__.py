"""The science of warm starting: plain PyTorch/NumPy, no Ray or W&B (a test enforces it)."""
