"""The options of TFX's own components that take more than a setting: StatisticsGen's
statistics options and the Evaluator's metrics, slices and blessing thresholds."""
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features
from pipeline.config import PipelineConfig


def statistics_options() -> tfdv.StatsOptions:
    """StatisticsGen's options: the image is bytes, not a category.

    Left to itself TFDV takes the encoded images for a categorical string and keeps
    top-k and unique counts over every distinct value, each a whole JPEG: its memory grew
    with the data (benchmarks/RESULTS.md, section 5). A schema feature with an
    `image_domain` makes it a bytes feature (sizes only, no value counts). TFDV reads the
    other features' types from the data, as without a schema.
    """
    image = schema_pb2.Feature(name=features.IMAGE_KEY, type=schema_pb2.BYTES,
                               image_domain=schema_pb2.ImageDomain())
    return tfdv.StatsOptions(schema=schema_pb2.Schema(feature=[image]))


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Binary metrics on the probability of class index 1, overall, per label, per size
    bucket and per orientation."""
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.max_accuracy_drop},
        ),
    )
    metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        # The blessing is decided on the whole eval split: the per-label, size and
        # orientation slices are for reading (and small ones are noisy).
        tfma.MetricConfig(class_name="BinaryAccuracy", per_slice_thresholds=[
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=accuracy_threshold)]),
        tfma.MetricConfig(class_name="AUC"),
        tfma.MetricConfig(class_name="Precision"),
        tfma.MetricConfig(class_name="Recall"),
        tfma.MetricConfig(class_name="Calibration"),
        tfma.MetricConfig(class_name="CalibrationPlot"),
        tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
    ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            # What TFMA falls back to anyway after failing to load the model with Keras
            # (our custom loss): saying so spares that load, ~6 s a model.
            model_type=tfma.TF_GENERIC,
            signature_name=features.TF_EXAMPLE_SIGNATURE,
            label_key=features.LABEL_KEY,
            prediction_key=features.POSITIVE_PROBABILITY_KEY,
        )],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=[features.LABEL_NAME_KEY]),
            tfma.SlicingSpec(feature_keys=[features.SIZE_BUCKET_KEY]),
            tfma.SlicingSpec(feature_keys=[features.ORIENTATION_KEY]),
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
        # The model's compiled Keras metrics expect the 2-way softmax, not the one
        # probability TFMA reads: evaluate only the metrics listed here.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
    )
