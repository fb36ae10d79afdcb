"""TFX components of our own: what TFX lacks for an image pipeline."""
import models  # noqa: F401  (first: it sets TensorFlow's environment, models/__init__.py)

