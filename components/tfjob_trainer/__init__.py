"""The Trainer as N workers on open-source Kubeflow: a TFJob of the Kubeflow Training
Operator, created, followed and deleted by the Trainer's task.

- `tfjob.py`: the TFJob manifest, and the Kubernetes calls that create, follow and delete it.
- `executor.py`: the Trainer executor that does so; each worker runs TFX's own Trainer
  executor (and so our `run_fn`) with the task's inputs, outputs and properties.
"""
