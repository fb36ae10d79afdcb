"""`create_pipeline(config, plan)`: wires the components, and nothing else.

Every runner builds its pipeline with this one function: the settings come from the
config, what differs between backends from the runner's plan (pipeline/plan.py), the
options of TFX's own components from pipeline/component_options.py.
"""
from pathlib import Path
from typing import Optional

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.dsl.input_resolution import canned_resolver_functions

import models
from components import atomic_pusher, pushed_baseline
from components.data_fingerprint.component import DataFingerprint, give_fingerprint_to
from components.evaluator import Evaluator
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.layout import default_input_config
from pipeline.component_options import eval_config, statistics_options
from pipeline.config import PipelineConfig
from pipeline.plan import PUSHED_BASELINE, PipelinePlan, local_plan

# Locally, TFX packages the folder of a module file as user code, so Transform and
# Trainer run this code as it is when the pipeline starts, and rerun when it changes.
_MODELS_DIR = Path(models.__file__).parent
PREPROCESSING_MODULE = str(_MODELS_DIR / "preprocessing.py")
TRAINER_MODULE = str(_MODELS_DIR / "trainer.py")
# In an image that holds the code, the spec names the functions.
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
TRANSFORM_ID = "Transform"
TRAINER_ID = "Trainer"
BASELINE_ID = "latest_blessed_model_resolver"
# Argo reads "_" in a task name as an operator of its dependency expressions.
PUSHED_BASELINE_ID = "latest-pushed-model"
DATA_FINGERPRINT_ID = "data-fingerprint"


def create_pipeline(config: PipelineConfig,
                    plan: Optional[PipelinePlan] = None) -> tfx.dsl.Pipeline:
    """ImageExampleGen -> statistics/schema -> Transform -> Trainer -> Evaluator -> Pusher.

    `plan`: the runner's (None: the local engine's, `local_plan(config)`), for a config
    that its backend accepts (`config.check_runs_on`, which each runner calls first).
    """
    plan = plan or local_plan(config)
    input_config = default_input_config(in_spans=config.spans)
    example_gen = ImageExampleGen(
        input_base=plan.input_base,
        class_names=config.class_names,
        max_image_pixels=config.max_image_pixels,
        max_rejected_fraction=config.max_rejected_fraction,
        max_file_bytes=config.max_file_bytes,
        max_split_overlap_fraction=config.max_split_overlap_fraction,
        input_config=input_config,
    )
    # Without it, ImageExampleGen's own driver fingerprints the files for TFX's cache.
    data_fingerprint = (DataFingerprint(input_base=plan.input_base, input_config=input_config)
                        .with_id(DATA_FINGERPRINT_ID) if plan.fingerprint_data else None)
    if data_fingerprint:
        give_fingerprint_to(example_gen, data_fingerprint)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=statistics_options())
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    if plan.baseline == PUSHED_BASELINE:
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
        **({"preprocessing_fn": PREPROCESSING_FN} if plan.code_in_image
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
    launcher = plan.trainer_launcher
    trainer = tfx.components.Trainer(
        **({"run_fn": RUN_FN} if plan.code_in_image else {"module_file": TRAINER_MODULE}),
        **({"custom_executor_spec": executor_spec.ExecutorClassSpec(launcher.executor_class)}
           if launcher else {}),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=plan.train_args,
        eval_args=tfx.proto.EvalArgs(),
        base_model=(latest_blessed_model.outputs["model"]
                    if config.spans and config.warm_start else None),
        custom_config={**config.model_config().to_custom_config(),
                       **(launcher.custom_config if launcher else {})},
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
        components=[*([data_fingerprint] if data_fingerprint else []), example_gen,
                    statistics_gen, schema_gen, example_validator, latest_blessed_model,
                    *span_nodes, transform, trainer, evaluator, pusher],
        enable_cache=config.enable_cache,
        metadata_connection_config=plan.metadata_connection_config,
        beam_pipeline_args=plan.beam_pipeline_args,
    )
