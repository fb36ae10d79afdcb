"""The pipeline: one config object, one `create_pipeline(config)`, thin runners."""
import os

# Keras 2 (tf-keras) and oneDNN's CPU kernels (why: models/__init__.py) must be chosen
# before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
