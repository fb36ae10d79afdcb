"""TFX components of our own: what TFX lacks for an image pipeline."""
import os

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported, and so must
# oneDNN's CPU kernels: TensorFlow turns them on by itself only on CPUs with AVX-512, and
# without them a training step on AVX2 CPUs (this project's 2-core machines) takes twice
# as long, its convolutions' gradients run by Eigen.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
