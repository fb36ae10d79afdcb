"""ImageExampleGen's default limits, in a module that imports nothing: the pipeline's
config takes them as its defaults, and reading the config loads neither TFX nor
TensorFlow."""

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000  # larger than any photo; decoding it would take 150 MB
# Larger than any photo's file (a 50-megapixel JPEG is ~25 MB); each file is read whole.
DEFAULT_MAX_FILE_BYTES = 64 * 2 ** 20
DEFAULT_MAX_REJECTED_FRACTION = 0.05
# Any image of one split in another, byte for byte, fails the run: the eval split would
# measure memory, and the gate bless it.
DEFAULT_MAX_SPLIT_OVERLAP_FRACTION = 0.0
