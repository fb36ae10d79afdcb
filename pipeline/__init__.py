"""The pipeline: one config object, one `create_pipeline(config)`, thin runners."""
import models  # noqa: F401  (first: it sets TensorFlow's environment, models/__init__.py)

