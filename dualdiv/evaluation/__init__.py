"""Evaluation: the metrics of generated against held-out images, their reliability, the figures."""
