"""create_pipeline: the components, their dependencies and the blessing thresholds."""
import pytest

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
    assert accuracy.threshold.value_threshold.lower_bound.value == 0.8
    assert accuracy.threshold.change_threshold.absolute.value == pytest.approx(-0.05)
