"""create_pipeline: the components, their dependencies and the blessing thresholds."""
import pytest
import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline, eval_config


def test_pipeline_wiring_and_thresholds_from_config(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path), min_accuracy=0.8, max_accuracy_drop=0.05)
    components = {component.id: component for component in create_pipeline(config).components}
    upstream = {name: {node.id for node in component.upstream_nodes}
                for name, component in components.items()}
    assert upstream == {
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
