"""`create_pipeline(config)`: wires the components, and nothing else.

Every runner (local, Kubeflow) builds its pipeline with this one function.
"""
import dataclasses
from pathlib import Path
from typing import Any, Optional

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from google.protobuf import json_format, wrappers_pb2
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.dsl.input_resolution import canned_resolver_functions

import models
from components import atomic_pusher, pushed_baseline
from components.data_fingerprint.component import DataFingerprint, give_fingerprint_to
from components.evaluator import Evaluator
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.layout import default_input_config
from models import features
from pipeline.config import LOCAL, PipelineConfig

# Locally, TFX packages the folder of a module file as user code, so Transform and
# Trainer run this code as it is when the pipeline starts, and rerun when it changes.
_MODELS_DIR = Path(models.__file__).parent
PREPROCESSING_MODULE = str(_MODELS_DIR / "preprocessing.py")
TRAINER_MODULE = str(_MODELS_DIR / "trainer.py")
# On a cluster the image holds the code (its tag is the code's fingerprint): the spec
# names the functions, and compiling writes nothing to the pipeline root.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TRANSFORM_ID = "Transform"
TRAINER_ID = "Trainer"
BASELINE_ID = "latest_blessed_model_resolver"
# Argo reads "_" in a task name as an operator of its dependency expressions.
PUSHED_BASELINE_ID = "latest-pushed-model"
DATA_FINGERPRINT_ID = "data-fingerprint"


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


@dataclasses.dataclass(frozen=True)
class TrainerLauncher:
    """A Trainer executor that launches the training on other machines (e.g. N workers),
    and the custom_config keys it reads beside the model's."""

    executor_class: type
    custom_config: dict[str, Any]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    target: str = LOCAL,
    trainer_launcher: Optional[TrainerLauncher] = None,
) -> tfx.dsl.Pipeline:
    """ImageExampleGen -> statistics/schema -> Transform -> Trainer -> Evaluator -> Pusher.

    `target`: where it runs, LOCAL or one of KFP_TARGETS (kubeflow/runner.py compiles).
    `trainer_launcher`: how the Trainer's task starts config.trainer_workers workers
    (kubeflow/multi_worker.py); without one the Trainer trains in its own process.
    """
    if config.trainer_workers > 1 and trainer_launcher is None:
        raise ValueError(
            f"Invalid setting trainer_workers={config.trainer_workers} for a pipeline that "
            "trains in the Trainer's own process (the local engine): several workers are "
            "launched on a Kubeflow or Vertex target (make kubeflow-compile).")
    on_cluster = target != LOCAL
    input_base = config.input_base
    # No step count: the Trainer trains config.train_epochs over the data it is given.
    train_args = tfx.proto.TrainArgs()
    if on_cluster:
        # Each run may set these (in the KFP UI, or `--param`); the config holds defaults.
        input_base = tfx.dsl.experimental.RuntimeParameter(
            name="data_root", ptype=str, default=input_base)
        # A proto cannot hold a parameter, so the whole TrainArgs is one, as its JSON.
        train_args = tfx.dsl.experimental.RuntimeParameter(
            name="train_args", ptype=str, default=json_format.MessageToJson(train_args, indent=None))
    input_config = default_input_config(in_spans=config.spans)
    example_gen = ImageExampleGen(
        input_base=input_base,
        class_names=config.class_names,
        max_image_pixels=config.max_image_pixels,
        max_rejected_fraction=config.max_rejected_fraction,
        max_file_bytes=config.max_file_bytes,
        max_split_overlap_fraction=config.max_split_overlap_fraction,
        input_config=input_config,
    )
    # Locally, ImageExampleGen's own driver fingerprints the files for TFX's cache. A
    # cluster's cache keys a task by its parameters, not by the files it reads: the
    # fingerprint becomes one (components/data_fingerprint/).
    data_fingerprint = (DataFingerprint(input_base=input_base, input_config=input_config)
                        .with_id(DATA_FINGERPRINT_ID) if on_cluster else None)
    if data_fingerprint:
        give_fingerprint_to(example_gen, data_fingerprint)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=statistics_options())
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    if target == "kubeflow":
        # Open-source KFP runs no resolver tasks: the baseline is the last pushed model.
        latest_blessed_model = pushed_baseline.LatestPushedModel(
            serving_model_dir=config.serving_model_dir,
            data_fingerprint=data_fingerprint).with_id(PUSHED_BASELINE_ID)
    else:
        latest_blessed_model = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id(BASELINE_ID)
    if config.spans:
        # Retraining on spans: the newest spans ingested by any run so far (this run's
        # included: Transform resolves its inputs after ExampleGen ran), and the analyzer
        # cache of the last Transform, so that spans already analysed are not read again.
        # (A standalone channel: ExampleGen's output channel would only hold this run's
        # span. SpanRangeStrategy, because it reads the span where ExampleGen writes it,
        # a custom property; rolling_range reads the declared property, always 0 here.)
        training_window = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.SpanRangeStrategy,
            config={"range_config": tfx.proto.RangeConfig(rolling_range=tfx.proto.RollingRange(
                num_spans=config.training_window_spans))},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id),
        ).with_id("training_window_resolver")
        training_examples = training_window.outputs["examples"]
        span_nodes = [training_window]
        analyzer_cache = canned_resolver_functions.latest_created(
            tfx.dsl.Channel(type=tfx.types.standard_artifacts.TransformCache,
                            producer_component_id=TRANSFORM_ID))
    else:
        # A single dataset: a cache input would change every run, and Transform would
        # never come from TFX's cache.
        training_examples, analyzer_cache = example_gen.outputs["examples"], None
        span_nodes = []
    transform = tfx.components.Transform(
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        **({"preprocessing_fn": PREPROCESSING_FN} if on_cluster
           else {"module_file": PREPROCESSING_MODULE}),
        custom_config=config.transform_config().to_custom_config(),
        analyzer_cache=analyzer_cache,
        disable_analyzer_cache=not config.spans,
        # Its pre- and post-transform statistics (of JPEG bytes and of 12,288 pixel values
        # per image) serve no one here (StatisticsGen has the raw data's), and they cost
        # half its time and memory growing with the data: 7.0 GiB peak at 16k images,
        # against 3.8 GiB without (benchmarks/RESULTS.md).
        disable_statistics=True,
    ).with_id(TRANSFORM_ID)
    launch = ({"custom_executor_spec": executor_spec.ExecutorClassSpec(
                   trainer_launcher.executor_class)} if trainer_launcher else {})
    trainer = tfx.components.Trainer(
        **({"run_fn": RUN_FN} if on_cluster else {"module_file": TRAINER_MODULE}),
        **launch,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=train_args,
        eval_args=tfx.proto.EvalArgs(),
        base_model=(latest_blessed_model.outputs["model"]
                    if config.spans and config.warm_start else None),
        custom_config={**config.model_config().to_custom_config(),
                       **(trainer_launcher.custom_config if trainer_launcher else {})},
    ).with_id(TRAINER_ID)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed_model.outputs["model"],
        eval_config=eval_config(config),
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(atomic_pusher.Executor),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[*([data_fingerprint] if data_fingerprint else []), example_gen, statistics_gen, schema_gen, example_validator,
                    latest_blessed_model, *span_nodes, transform, trainer, evaluator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam_pipeline_args(target),
    )
