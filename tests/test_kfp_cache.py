"""KFP's cache as kubeflow/contract_run.py imitates it, and the data fingerprint that keys
the pipeline's tasks in it (components/data_fingerprint/).

The cache key and its fingerprint are checked against kubeflow/pipelines' own test
vectors (backend/src/v2/cacheutils/cache_test.go, TestGenerateFingerPrint, at 2.4.0); the
three scheduled runs (unchanged data, then a new image) are in
tests/test_kubeflow_contract_e2e.py.
"""
import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf

from components.data_fingerprint.fingerprint import data_fingerprint
from components.image_example_gen.layout import default_input_config
from kubeflow.contract_run import go_json, kfp_cache_key, kfp_fingerprint

MODEL_SCHEMA = ("title: kfp.Model\ntype: object\nproperties:\n  framework:\n    type: string\n"
                "  framework_version:\n    type: string\n")


@pytest.mark.parametrize("cache_key, fingerprint", [
    ({"inputArtifactNames": {"dataset_one": {"artifactNames": ["1"]},
                             "dataset_two": {"artifactNames": ["2"]}},
      "inputParameterValues": {"message": "Some string value", "num_steps": 5},
      "outputArtifactsSpec": {
          "model": {"name": "model", "type": {"instanceSchema": MODEL_SCHEMA},
                    "metadata": {"name": "model"}},
          "metrics": {"name": "metrics", "type": {"schemaTitle": "kfp.Metrics"},
                      "metadata": {"name": "metrics"}}},
      "outputParametersSpec": {"output_parameter_one": "STRING", "output_parameter_two": "INT"},
      "containerSpec": {"cmdArgs": ["sh", "ec", "test"], "image": "python:3.9"}},
     "4e8a5d7d70997b0a35429fcd481af8fcd5b9f58ef4391bdb6ad900fd1c63622b"),
    ({"inputArtifactNames": {"dataset": {"artifactNames": ["10"]}},
      "outputParametersSpec": {"output_parameter": "DOUBLE"},
      "containerSpec": {"cmdArgs": ["sh", "ec", "run"], "image": "python:3.9"}},
     "0a4cc1f15cdfad5170e1358518f7128c5278500a670db1b9a3f3d83b93db396e"),
])
def test_fingerprint_of_a_cache_key_is_kfps_own(cache_key, fingerprint):
    assert kfp_fingerprint(cache_key) == fingerprint


@pytest.mark.parametrize("value, written", [
    (5.0, "5"), (0.05, "0.05"), (1e-5, "0.00001"), (1e-7, "1e-7"), (1.5e-10, "1.5e-10"),
    (1e20, "100000000000000000000"), (1e21, "1e+21"), (-0.0, "-0"),
    ("a<b>&c\u2028", '"a\\u003cb\\u003e\\u0026c\\u2028"'), ("é\n", '"é\\n"'),
    ({"b": [True, None], "a": {}}, '{"a":{},"b":[true,null]}'),
])
def test_values_are_written_as_gos_encoding_json_writes_them(value, written):
    assert go_json(value) == written


def _executor_input(salt: str, data_fingerprint: str, examples_id: str = "7") -> dict:
    """An ExecutorInput as KFP's driver builds it: output URIs salted per run."""
    return {"inputs": {"parameterValues": {"data_fingerprint": data_fingerprint, "epochs": 3.0},
                       "artifacts": {"examples": {"artifacts": [
                           {"name": examples_id, "type": {"instanceSchema": ""},
                            "uri": f"gs://root/run-{salt}/examples", "metadata": {"span": 0.0}}]}}},
            "outputs": {"artifacts": {"model": {"artifacts": [
                {"uri": f"gs://root/run-{salt}/Trainer/{salt}/model",
                 "type": {"instanceSchema": "title: tfx.Model\n"}}]}},
                        "parameters": {"fingerprint": {"outputFile": "/tmp/kfp/outputs/fingerprint"}},
                        "outputFile": "/tmp/kfp_outputs/output_metadata.json"}}


CONTAINER = {"image": "cats-dogs-resnet:abc", "command": ["python", "-m", "kubeflow.entrypoint"],
             "args": ["--json_serialized_invocation_args", "{{$}}"]}


def _fingerprint(executor_input: dict, container: dict = CONTAINER) -> str:
    return kfp_fingerprint(kfp_cache_key(executor_input, container, {"fingerprint": "STRING"}))


def test_a_task_misses_the_cache_only_when_its_inputs_parameters_or_code_change():
    first = _executor_input("1", "72 files")
    assert kfp_cache_key(first, CONTAINER, {"fingerprint": "STRING"}) == {
        "inputArtifactNames": {"examples": {"artifactNames": ["7"]}},
        "inputParameterValues": {"data_fingerprint": "72 files", "epochs": 3.0},
        "outputArtifactsSpec": {"model": {"type": {"instanceSchema": "title: tfx.Model\n"}}},
        "outputParametersSpec": {"fingerprint": "STRING"},
        "containerSpec": {"image": "cats-dogs-resnet:abc",
                          "cmdArgs": ["python", "-m", "kubeflow.entrypoint",
                                      "--json_serialized_invocation_args", "{{$}}"]}}
    # Another run, another salt and other URIs: the same key.
    assert _fingerprint(_executor_input("2", "72 files")) == _fingerprint(first)
    assert _fingerprint(_executor_input("2", "73 files")) != _fingerprint(first)
    assert _fingerprint(_executor_input("2", "72 files", examples_id="8")) != _fingerprint(first)
    assert _fingerprint(first, {**CONTAINER, "image": "cats-dogs-resnet:def"}) != _fingerprint(first)


@pytest.fixture
def data(tmp_path) -> Path:
    for split in ("training_set", "test_set"):
        for label in ("cats", "dogs"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for number in range(2):
                (folder / f"{label}.{number}.jpg").write_bytes(bytes([number]) * (10 + number))
    return tmp_path / "data"


def _fingerprint_of(root) -> str:
    return data_fingerprint(str(root), default_input_config())


def test_data_fingerprint_changes_with_each_file_added_removed_moved_or_rewritten(data):
    before = _fingerprint_of(data)
    assert before.startswith("8 files, 84 bytes, sha256:")
    assert _fingerprint_of(data) == before
    cat = data / "training_set" / "cats" / "cats.0.jpg"
    changes = []

    def changed() -> bool:
        changes.append(_fingerprint_of(data))
        return changes[-1] not in [before, *changes[:-1]]

    shutil.copy(cat, data / "training_set" / "cats" / "cats.9.jpg")
    assert changed()
    os.remove(data / "training_set" / "cats" / "cats.9.jpg")
    assert _fingerprint_of(data) == before  # the same files, the same times
    os.remove(data / "test_set" / "dogs" / "dogs.1.jpg")
    assert changed()
    # A move to another class relabels the image: same size, same time, other path.
    os.rename(cat, data / "training_set" / "dogs" / "cats.0.jpg")
    assert changed()
    # Rewritten in place, same size: its modification time.
    rewritten = data / "training_set" / "dogs" / "dogs.0.jpg"
    rewritten.write_bytes(b"\xff" * 10)
    os.utime(rewritten, ns=(rewritten.stat().st_atime_ns, rewritten.stat().st_mtime_ns + 10**9))
    assert changed()
    # Files outside the splits' class folders are not ingested: not fingerprinted.
    (data / "README.txt").write_text("about")
    assert _fingerprint_of(data) == changes[-1]


def test_data_fingerprint_is_of_the_data_not_where_it_lies(data, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved, copy_function=shutil.copy2)  # copy2 keeps the times
    assert _fingerprint_of(moved) == _fingerprint_of(data)


def test_data_fingerprint_reads_object_stores_through_tensorflow(data):
    """ram:// is TensorFlow's in-memory filesystem, listed and stat'ed as gs:// or s3://
    are (its modification times are 0)."""
    root = "ram://fingerprint-test/data"
    for path in data.rglob("*.jpg"):
        target = f"{root}/{path.relative_to(data).as_posix()}"
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(str(path), target)
    before = _fingerprint_of(root)
    assert before.startswith("8 files, 84 bytes, sha256:")
    assert _fingerprint_of(root + "/") == before
    tf.io.gfile.copy(f"{root}/test_set/cats/cats.0.jpg", f"{root}/test_set/cats/cats.5.jpg")
    assert _fingerprint_of(root).startswith("9 files, 94 bytes, sha256:")


def test_the_contract_runner_runs_vertexs_examplegen_hook_before_the_cache_lookup(data, tmp_path):
    """The vertex spec's lifecycle.preCacheCheck (TFX's ExampleGen driver), run as
    kubeflow/contract_run.py runs it: its span, input fingerprint and resolved
    input_config become the task's parameters, and so part of its cache key."""
    from kubeflow.contract_run import (_run_pre_cache_check, parameter_values, pod_environment,
                                       read_spec)
    from kubeflow.runner import compile_pipeline
    from pipeline.config import PipelineConfig

    config = PipelineConfig(kfp_target="vertex", data_root=str(data),
                            output_dir=str(tmp_path / "outputs"))
    spec, _ = read_spec(compile_pipeline(config, str(tmp_path / "spec"), allow_local_paths=True))
    task = spec["root"]["dag"]["tasks"]["ImageExampleGen"]
    container = spec["deploymentSpec"]["executors"]["ImageExampleGen_executor"]["container"]
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    executor_input = {
        "inputs": {"parameterValues": parameter_values(
            task, {"data_root": str(data)}, {"data-fingerprint": {"fingerprint": "8 files"}})},
        "outputs": {"artifacts": {"examples": {"artifacts": [{
            "uri": str(tmp_path / "outputs" / "examples"),
            "type": spec["components"]["ImageExampleGen"]["outputDefinitions"]["artifacts"][
                "examples"]["artifactType"]}]}},
            "outputFile": str(task_dir / "executor_output.json")}}
    before = kfp_cache_key(executor_input, container, {})

    _run_pre_cache_check("ImageExampleGen", container["lifecycle"]["preCacheCheck"],
                         executor_input, task_dir, pod_environment(container, {}, {}))

    parameters = executor_input["inputs"]["parameterValues"]
    assert parameters["span"] == 0
    assert parameters["input_fingerprint"].startswith("split:train,num_files:4,total_bytes:42,")
    assert parameters["data_fingerprint"] == "8 files"
    assert (task_dir / "pre_cache_check_log.txt").is_file()
    after = kfp_cache_key(executor_input, container, {})
    assert after["inputParameterValues"] == {**before["inputParameterValues"],
                                             "span": 0, "input_fingerprint": parameters[
                                                 "input_fingerprint"],
                                             "input_config": parameters["input_config"]}
