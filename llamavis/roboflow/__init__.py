"""Roboflow workflows: read their Llama steps and run them through llamavis."""
