"""The whole pipeline with its Beam components on Flink (`make pipeline BEAM_RUNNER=flink`,
a local Flink cluster of pipeline/flink.py), against the DirectRunner's shared blessed run
on the same data and settings: the same examples, ingestion report, schema and
transform, and the same TFMA metrics for the same model.

The Flink run starts from a copy of the blessed run's metadata, in outputs of its own:
its Evaluator then takes the blessed model as its baseline and evaluates it on Flink,
and the blessed run's outputs, which other tests read, stay as they were. It trains one
epoch only: its own model is not what is compared.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from metadata.runs import latest_run_summary
from models import features
from pipeline import flink
from pipeline.config import PipelineConfig
from tests.helpers import component_outputs, run_make

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(flink.missing_tools()), reason=(
        f"Beam on Flink needs {', '.join(flink.missing_tools())}, not on this machine")),
]

SPLITS = ("train", "eval")


@pytest.fixture(scope="module")
def flink_run(blessed_run, tmp_path_factory):
    """The blessed run's pipeline and data, with Beam on Flink: (config, run summary,
    stdout)."""
    work = tmp_path_factory.mktemp("flink")
    environment = {**blessed_run["environment"], "OUTPUT_DIR": str(work / "outputs"),
                   "LOCAL_HOME": str(work / "tfx_cli_home"), "BEAM_RUNNER": "flink",
                   "ENABLE_CACHE": "false", "TRAIN_EPOCHS": "1"}
    config = PipelineConfig.from_env(environment)
    Path(config.metadata_path).parent.mkdir(parents=True)
    shutil.copy(blessed_run["config"].metadata_path, config.metadata_path)
    result = run_make("pipeline", environment)
    summary = latest_run_summary(config.metadata_path)
    assert summary.run_id != blessed_run["summary"].run_id
    return {"config": config, "summary": summary, "stdout": result.stdout}


def outputs_of(run: dict, component: str) -> dict:
    return component_outputs(run["config"], run["summary"].run_id, component)


def examples_by_file(examples_uri: str, split: str) -> dict[str, bytes]:
    """Each written example of a split, serialized, by the file it was read from."""
    files = [str(path) for path in Path(examples_uri, f"Split-{split}").iterdir()]
    examples = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        file_name = example.features.feature[features.FILE_NAME_KEY].bytes_list.value[0]
        examples[file_name.decode()] = record.numpy()
    return examples


def test_every_beam_component_ran_as_a_flink_job(flink_run):
    log = (flink.FlinkFolder(Path(flink_run["config"].flink_dir)).logs
           / "job-server.log").read_text()
    # ImageExampleGen, StatisticsGen, Transform (analysis and transform) and Evaluator.
    assert log.count("Starting job invocation") >= 4, log[-3000:]


def test_flink_ingests_the_same_examples_and_reports_the_same_files(blessed_run, flink_run):
    direct = outputs_of(blessed_run, "ImageExampleGen")["examples"].uri
    on_flink = outputs_of(flink_run, "ImageExampleGen")["examples"].uri
    for split in SPLITS:
        assert examples_by_file(on_flink, split) == examples_by_file(direct, split), split
    report = json.loads(Path(on_flink, "ingestion_report.json").read_text())
    assert report == json.loads(Path(direct, "ingestion_report.json").read_text())


def schema_of(run: dict) -> schema_pb2.Schema:
    """The run's inferred schema, its features and string domains in name order: the
    statistics list them in the order their runner combined them."""
    path = Path(outputs_of(run, "SchemaGen")["schema"].uri, "schema.pbtxt")
    schema = text_format.Parse(path.read_text(), schema_pb2.Schema())
    for field in (schema.feature, schema.string_domain):
        in_order = sorted(field, key=lambda item: item.name)
        del field[:]
        field.extend(in_order)
    return schema


def test_flink_infers_the_same_schema(blessed_run, flink_run):
    assert schema_of(flink_run) == schema_of(blessed_run)


def test_flink_transform_normalises_as_the_direct_runner_does(blessed_run, flink_run):
    """Both transform graphs, full-pass statistics included, on the same eval images."""
    examples_uri = outputs_of(blessed_run, "ImageExampleGen")["examples"].uri
    serialized = list(examples_by_file(examples_uri, "eval").values())[:8]
    transformed = []
    for run in (blessed_run, flink_run):
        transform_graph = outputs_of(run, "Transform")["transform_graph"].uri
        transform_output = tft.TFTransformOutput(transform_graph)
        raw = tf.io.parse_example(serialized, transform_output.raw_feature_spec())
        transformed.append(transform_output.transform_raw_features(raw))
    direct, on_flink = transformed
    assert set(on_flink) == set(direct)
    for key in direct:
        # The per-channel means and variances are float32 sums over every pixel of the
        # training split, added up in another order: 5e-5 apart on this data.
        np.testing.assert_allclose(on_flink[key].numpy(), direct[key].numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=key)


def test_flink_evaluates_the_blessed_model_as_the_direct_runner_did(blessed_run, flink_run):
    """The Flink run's baseline is the blessed model: its metrics on Flink are those the
    DirectRunner computed for it as the candidate."""
    evaluation_uri = flink_run["summary"].evaluation_uri
    baseline = tfma.load_eval_result(evaluation_uri, model_name="baseline")
    metrics = {name: value["doubleValue"]
               for name, value in baseline.get_metrics_for_slice().items()
               if "doubleValue" in value}
    direct = blessed_run["summary"].metrics
    compared = {"binary_accuracy", "auc", "precision", "recall"}
    assert compared <= set(metrics) & set(direct), (metrics, direct)
    for name in set(metrics) & set(direct):
        assert metrics[name] == pytest.approx(direct[name], abs=1e-4), name
