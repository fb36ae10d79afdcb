"""TFX components of our own: what TFX lacks for an image pipeline."""
import os

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
