"""Names shared by ingestion, Transform, Trainer and Evaluator: features and signatures."""

# Raw features, as written by the image ExampleGen.
IMAGE_KEY = "image_raw"  # encoded image bytes as read (photos with an EXIF orientation: upright PNG)
LABEL_KEY = "label"  # int64 class index into the sorted class names
LABEL_NAME_KEY = "label_name"  # class folder name, e.g. "cats"
FILE_NAME_KEY = "file_name"  # path relative to the split folder, e.g. "cats/cat.1.jpg"
HEIGHT_KEY = "height"  # decoded height in pixels
WIDTH_KEY = "width"  # decoded width in pixels
# Slicing features for the evaluation report: where a model is weak often depends on
# the photo's size and shape, which TFMA can only slice on if the raw examples carry them.
SIZE_BUCKET_KEY = "size_bucket"  # from the longer side: see SIZE_BUCKETS
ORIENTATION_KEY = "orientation"  # "landscape", "portrait" or "square"

# (name, longer side in pixels below which an image falls in it); the last has no bound.
SIZE_BUCKETS = (("small", 200), ("medium", 400), ("large", None))
# Sides within this fraction of each other count as square.
SQUARE_TOLERANCE = 0.05

# Transformed features, as written by Transform.
TRANSFORMED_IMAGE_KEY = "image"  # float32 [size, size, 3], normalised per channel

# Outputs of the serving signatures.
PROBABILITIES_KEY = "probabilities"  # softmax over the classes
POSITIVE_PROBABILITY_KEY = "positive_probability"  # probability of class index 1, for TFMA
PREDICTED_CLASS_KEY = "predicted_class_id"
PREDICTED_LABEL_KEY = "predicted_label"
ERROR_KEY = "error"  # raw-bytes signature: why an input got no prediction, "" if it did

# Signatures of the exported SavedModel.
IMAGE_BYTES_SIGNATURE = "serving_default"  # what a client sends to TF Serving
TF_EXAMPLE_SIGNATURE = "serving_tf_example"  # what TFMA feeds
IMAGE_BYTES_INPUT = "image_bytes"  # TF Serving's REST API base64-decodes `*_bytes` inputs

# In a Model artifact, beside Format-Serving/ (which alone is pushed): the weights and
# architecture for the next run's warm start, and how the training went (JSON: epochs
# planned and trained, steps, whether it stopped early, eval accuracy).
TRAINING_STATE_DIR = "training_state"
TRAINING_SUMMARY_FILE = "training_summary.json"
