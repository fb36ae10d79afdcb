"""Evaluation reports a person can read without Jupyter: one HTML file and a JSON summary
per pipeline run (or per pair of runs), from the Evaluator's results and the Trainer's logs."""
