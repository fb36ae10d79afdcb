"""create_pipeline: the components, their dependencies, the blessing thresholds and the
statistics options."""
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.image_example_gen.image_example import image_example
from components.image_example_gen.image_file import ImageFile
from models import features
from pipeline.component_options import eval_config
from pipeline.config import LOCAL, PipelineConfig
from pipeline.definition import create_pipeline
from pipeline.plan import local_plan
from tests.helpers import encode_image


# Each component and the components it takes inputs from, on the local engine (a
# cluster's: tests/test_kubeflow.py, from this one).
LOCAL_DAG = {
    "ImageExampleGen": set(),
    "StatisticsGen": {"ImageExampleGen"},
    "SchemaGen": {"StatisticsGen"},
    "ExampleValidator": {"StatisticsGen", "SchemaGen"},
    "Transform": {"ImageExampleGen", "SchemaGen"},
    "Trainer": {"Transform", "SchemaGen"},
    "latest_blessed_model_resolver": set(),
    "Evaluator": {"ImageExampleGen", "Trainer", "latest_blessed_model_resolver"},
    "Pusher": {"Trainer", "Evaluator"},
}


def test_pipeline_wiring_and_thresholds_from_config(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path), min_accuracy=0.8, max_accuracy_drop=0.05)
    pipeline = create_pipeline(config, local_plan(config))
    upstream = {component.id: {node.id for node in component.upstream_nodes}
                for component in pipeline.components}
    assert upstream == LOCAL_DAG
    assert pipeline.beam_pipeline_args == config.beam_pipeline_args(LOCAL)
    [accuracy] = [metric for metric in eval_config(config).metrics_specs[0].metrics
                  if metric.class_name == "BinaryAccuracy"]
    [overall_only] = accuracy.per_slice_thresholds
    assert list(overall_only.slicing_specs) == [tfma.SlicingSpec()]
    assert overall_only.threshold.value_threshold.lower_bound.value == 0.8
    assert overall_only.threshold.change_threshold.absolute.value == pytest.approx(-0.05)


def test_spans_mode_trains_on_a_window_with_analyzer_cache_and_warm_start(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path), spans=True)
    components = {component.id: component for component in create_pipeline(config).components}
    transform = components["Transform"]
    # Resolved from every run's ingested spans, not only this run's ExampleGen output.
    assert transform.inputs["examples"] is not components["ImageExampleGen"].outputs["examples"]
    assert "analyzer_cache" in transform.inputs
    assert "latest_blessed_model_resolver" in {
        node.id for node in components["Trainer"].upstream_nodes}  # warm start
    input_config = components["ImageExampleGen"].exec_properties["input_config"]
    assert "span-{SPAN}/training_set/*/*" in input_config


def test_a_single_dataset_has_no_analyzer_cache_so_transform_can_come_from_cache(tmp_path):
    components = {component.id: component
                  for component in create_pipeline(PipelineConfig(output_dir=str(tmp_path))).components}
    assert "analyzer_cache" not in components["Transform"].inputs


def test_statistics_of_the_image_are_bytes_statistics_not_top_values(tmp_path):
    """Every encoded image is a distinct value: as a categorical string, TFDV would keep
    counts of each (memory growing with the data). The rest is as TFDV infers it."""
    components = {component.id: component
                  for component in create_pipeline(PipelineConfig(output_dir=str(tmp_path))).components}
    options = tfdv.StatsOptions.from_json(
        components["StatisticsGen"].exec_properties["stats_options_json"])
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(6):
            image = ImageFile(encode_image(20 + i, 16, seed=i), height=16, width=20 + i,
                              content_sha256="")  # the example does not store it
            class_name = ("cats", "dogs")[i % 2]
            writer.write(image_example(image, i % 2, class_name, f"{class_name}/{i}.jpg")
                         .SerializeToString())

    statistics = tfdv.generate_statistics_from_tfrecord(path, stats_options=options)
    by_name = {feature.path.step[0]: feature for feature in statistics.datasets[0].features}
    image_stats = by_name[features.IMAGE_KEY]
    assert image_stats.type == statistics_pb2.FeatureNameStatistics.BYTES
    assert image_stats.WhichOneof("stats") == "bytes_stats"
    assert image_stats.bytes_stats.max_num_bytes > 0
    label_name_stats = by_name[features.LABEL_NAME_KEY]
    assert {value.value for value in label_name_stats.string_stats.top_values} == {"cats", "dogs"}
    assert by_name[features.LABEL_KEY].WhichOneof("stats") == "num_stats"

    # What SchemaGen infers from them, and Transform and the Trainer read.
    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    assert tfdv.get_feature(schema, features.IMAGE_KEY).type == schema_pb2.BYTES
    assert tfdv.get_feature(schema, features.LABEL_KEY).type == schema_pb2.INT
