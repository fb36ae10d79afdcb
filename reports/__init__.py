"""Evaluation reports a person can read without Jupyter: one HTML file and a JSON summary
per pipeline run (or per pair of runs), from TFMA's results, the model and its logs."""
import os

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
