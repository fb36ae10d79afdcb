"""The dataset's folder names (Kaggle's cats-vs-dogs layout), one home for the generator,
ingestion and the tools:

    DATA_ROOT/training_set/<class>/<file>     the training split
    DATA_ROOT/test_set/<class>/<file>         the eval split
    DATA_ROOT/span-<N>/training_set/...       with spans: numbered drops, each as above
"""
TRAIN_SPLIT_FOLDER = "training_set"
EVAL_SPLIT_FOLDER = "test_set"
# A drop's folder as TFX's ExampleGen matches it: {SPAN} stands for the number (a run
# ingests the largest).
SPAN_FOLDER_PATTERN = "span-{SPAN}"
# What file pattern matching (TFX's, Beam's, TensorFlow's) reads as wildcards.
GLOB_CHARACTERS = "*?["
