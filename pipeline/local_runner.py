"""Local runner, for the TFX CLI:

    tfx pipeline create --engine=local --pipeline_path=pipeline/local_runner.py
    tfx run create --engine=local --pipeline_name=cats-dogs-resnet

Settings come from PipelineConfig's defaults and the environment (e.g. DATA_ROOT).
"""
from absl import logging
from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline


def run() -> None:
    config = PipelineConfig.from_env()
    config.check_data_root_exists()
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        config.metadata_path)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    run()
