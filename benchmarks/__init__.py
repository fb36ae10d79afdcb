"""Benchmarks that print figures: ratios against a baseline measured in the same run
(benchmarks/RESULTS.md)."""
import models  # noqa: F401  (first: it sets TensorFlow's environment, models/__init__.py)
