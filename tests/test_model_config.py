"""ModelConfig and TransformConfig: built by PipelineConfig, through TFX's custom_config
and back exactly, or refused."""
import json

import pytest

from models.model_config import ModelConfig, TransformConfig
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

CUSTOM_CONFIG = PipelineConfig().model_config().to_custom_config()


def test_transform_and_trainer_read_back_what_the_pipeline_gave_them(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path), resnet_depth=50, image_size_px=128,
                            class_names=("cat", "dog"), mixed_precision="on",
                            trainer_gpu_count=2)
    components = {component.id: component for component in create_pipeline(config).components}
    for component_id, settings in [("Transform", config.transform_config()),
                                   ("Trainer", config.model_config())]:
        # As TFX stores it (JSON) and hands it to preprocessing_fn / run_fn.
        custom_config = json.loads(components[component_id].exec_properties["custom_config"])
        assert type(settings).from_custom_config(custom_config) == settings
    assert config.model_config().class_names == ("cat", "dog")
    assert config.model_config().resnet_depth == 50
    assert config.model_config().trainer_gpu_count == 2  # what run_fn checks it finds
    # Only what the transform depends on: a training setting changed keeps its cache.
    assert config.transform_config() == TransformConfig(image_size_px=128)


def test_an_unknown_key_is_refused_not_ignored():
    with pytest.raises(ValueError, match=r"ModelConfig: unknown keys \['resnet_layers'\], "
                                         r"missing keys \[\]"):
        ModelConfig.from_custom_config({**CUSTOM_CONFIG, "resnet_layers": 50})


def test_a_missing_key_is_refused_not_defaulted():
    without = {key: value for key, value in CUSTOM_CONFIG.items() if key != "bn_momentum"}
    with pytest.raises(ValueError, match=r"unknown keys \[\], missing keys \['bn_momentum'\]"):
        ModelConfig.from_custom_config(without)
    with pytest.raises(ValueError, match=r"TransformConfig: .*missing keys \['image_size_px'\]"):
        TransformConfig.from_custom_config({})
