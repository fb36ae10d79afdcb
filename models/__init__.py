"""User code that runs inside TFX's Transform and Trainer.

TFX packages this folder as user code, so nothing here imports from `pipeline/`. Every
other package of ours (and the tests) imports this one first, for the environment below:
its one home in Python (the Makefile and kubeflow/Dockerfile set it for the processes
they start).
"""
import os

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported, and so must
# oneDNN's CPU kernels: TensorFlow turns them on by itself only on CPUs with AVX-512, and
# without them a training step on AVX2 CPUs (this project's 2-core machines) takes twice
# as long, its convolutions' gradients run by Eigen.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
