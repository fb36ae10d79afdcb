"""Kubeflow Pipelines deployment of the same pipeline (see the README)."""
