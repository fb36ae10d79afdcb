"""The container entrypoint of every task on Kubeflow Pipelines, around TFX's own.

    python -m kubeflow.entrypoint --executor_class_path ... \
        --json_serialized_invocation_args '{{$}}' --json_serialized_inputs_spec_args ... \
        --json_serialized_outputs_spec_args ... [beam args]

TFX's V2 entrypoint (`tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`)
expects the ExecutorInput that Vertex AI Pipelines sends. Open-source KFP's driver sends
something else, and TFX 1.16 fails on it (tensorflow/tfx#7768). Each difference, with the
kubeflow/pipelines backend source that makes it (tags 2.4.0 to 2.17.0):

- Input artifacts are untyped: the driver reads them back from MLMD with `Schema: ""`
  (backend/src/v2/metadata/client.go, GetOutputArtifactsByExecutionId;
  OutputArtifact.ToRuntimeArtifact makes it the type's `instanceSchema`), and TFX's
  `_retrieve_class_path` does `yaml.safe_load("").get(...)`. The compiled spec holds
  each input's type (the `--json_serialized_inputs_spec_args` TFX writes): restored here.
- Metadata comes back converted by MLMD (backend/src/v2/metadata/converter.go:
  StructValueToMLMDValue on the way in, toRuntimeArtifact on the way out): lists as
  `{"list": [...]}`, structs as `{"struct": {...}}`, bools as numbers, and the launcher
  adds `display_name` and `store_session_info` (client.go, RecordArtifact). Unwrapped
  and dropped here. Names are MLMD ids ("42"): TFX only hashes them, so they pass.
- From 2.5.0 the driver adds an `executor-logs` output of type `system.Artifact` to
  every task (driver.go, provisionOutputs, with the API server's PUBLISH_LOGS=true),
  and TFX cannot import a class of that name. Outputs the component does not declare
  (`--json_serialized_outputs_spec_args`, written by kubeflow/runner.py) are KFP's:
  left to the launcher, not shown to TFX.
- What TFX writes to the executor output file is stored by the launcher through the
  same converter, which refuses null (StructValueToMLMDValue: "unknown/unsupported value
  type"): null metadata is left out of the file.
- Artifacts on KFP's default object store have `minio://` URIs, which TensorFlow cannot
  open: TFX gets them (and any parameter naming one, such as a run's data_root) as
  `s3://` (kubeflow/object_store.py), KFP's launcher gets its own URIs back.

TFX's executors and its entrypoint run unchanged, on the corrected ExecutorInput.
"""
import models  # noqa: F401  (first: it sets TensorFlow's environment, models/__init__.py)

import argparse
import json
import sys
from typing import Any

from kubeflow import object_store

# Custom properties KFP's launcher adds to every artifact it records (RecordArtifact).
KFP_ADDED_METADATA = ("display_name", "store_session_info")
# The one-key structs MLMD wraps lists and structs in (StructValueToMLMDValue).
MLMD_WRAPPERS = ("list", "struct")
OUTPUTS_SPEC_FLAG = "--json_serialized_outputs_spec_args"


class EntrypointError(ValueError):
    pass


def restored_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """An input artifact's metadata as the producer wrote it, before MLMD's conversions."""
    restored = {}
    for key, value in metadata.items():
        if key in KFP_ADDED_METADATA:
            continue
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in MLMD_WRAPPERS:
            value = next(iter(value.values()))
        restored[key] = value
    return restored


def _has_type(artifact: dict) -> bool:
    artifact_type = artifact.get("type") or {}
    return bool(artifact_type.get("schemaTitle") or artifact_type.get("instanceSchema"))


def typed_executor_input(executor_input: dict, inputs_spec: dict,
                         outputs_spec: dict) -> dict:
    """The ExecutorInput KFP's driver sent, as TFX's entrypoint reads it.

    `inputs_spec` and `outputs_spec` are the component's input and output definitions
    from the compiled spec ({"artifacts": {name: {"artifactType": ...}}, ...}).
    """
    declared_inputs = inputs_spec.get("artifacts", {})
    declared_outputs = outputs_spec.get("artifacts", {})
    inputs = executor_input.get("inputs", {})
    outputs = executor_input.get("outputs", {})
    typed_inputs = {}
    for key, artifact_list in inputs.get("artifacts", {}).items():
        if key not in declared_inputs:
            raise EntrypointError(
                f"Input artifact {key!r} is not an input of this component (its inputs: "
                f"{sorted(declared_inputs)}): the ExecutorInput is not for this task.")
        typed_inputs[key] = {"artifacts": [
            _tfx_artifact(artifact, declared_inputs[key]["artifactType"],
                          restored_metadata(artifact.get("metadata", {})))
            for artifact in artifact_list.get("artifacts", [])]}
    missing = sorted(set(declared_outputs) - set(outputs.get("artifacts", {})))
    if missing:
        raise EntrypointError(f"The ExecutorInput has no URI for the outputs {missing}.")
    typed_outputs = {
        key: {"artifacts": [_tfx_artifact(artifact, declared_outputs[key]["artifactType"],
                                          artifact.get("metadata", {}))
                            for artifact in artifact_list.get("artifacts", [])]}
        for key, artifact_list in outputs.get("artifacts", {}).items()
        if key in declared_outputs}
    # A run's data_root may name KFP's minio:// as well: TFX opens it as s3://.
    parameters = {name: object_store.tensorflow_uri(value) if isinstance(value, str) else value
                  for name, value in inputs.get("parameterValues", {}).items()}
    return {**executor_input,
            "inputs": {**inputs, "artifacts": typed_inputs, "parameterValues": parameters},
            "outputs": {**outputs, "artifacts": typed_outputs}}


def _tfx_artifact(artifact: dict, declared_type: dict, metadata: dict) -> dict:
    return {**artifact,
            "type": artifact["type"] if _has_type(artifact) else declared_type,
            "uri": object_store.tensorflow_uri(artifact.get("uri", "")),
            "metadata": metadata}


def recordable_executor_output(executor_output: dict, kfp_uris: dict[str, str]) -> dict:
    """TFX's executor output as KFP's launcher can record it: its URIs, no null values."""
    artifacts = {}
    for key, artifact_list in executor_output.get("artifacts", {}).items():
        artifacts[key] = {"artifacts": [
            {**artifact,
             "uri": kfp_uris.get(key, artifact.get("uri", "")),
             "metadata": {name: value for name, value in artifact.get("metadata", {}).items()
                          if value is not None}}
            for artifact in artifact_list.get("artifacts", [])]}
    return {**executor_output, "artifacts": artifacts}


def _parse_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m kubeflow.entrypoint",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args", default="{}")
    parser.add_argument(OUTPUTS_SPEC_FLAG, dest="outputs_spec", default="{}")
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> int:
    args, beam_args = _parse_flags(argv)
    sent = json.loads(args.json_serialized_invocation_args)
    executor_input = typed_executor_input(sent, json.loads(args.json_serialized_inputs_spec_args),
                                          json.loads(args.outputs_spec))
    kfp_uris = {key: artifact_list["artifacts"][0]["uri"]
                for key, artifact_list in sent["outputs"].get("artifacts", {}).items()
                if artifact_list.get("artifacts")}
    object_store.register_filesystems(executor_input)

    from tfx.dsl.io import fileio
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    args.json_serialized_invocation_args = json.dumps(executor_input)
    kubeflow_v2_run_executor.main((args, beam_args))
    output_file = executor_input["outputs"]["outputFile"]
    with fileio.open(output_file) as written:
        executor_output = json.loads(written.read())
    with fileio.open(output_file, "w") as rewritten:
        rewritten.write(json.dumps(recordable_executor_output(executor_output, kfp_uris)))
    return 0


if __name__ == "__main__":
    # Past tensorflow-io's abort at exit (kubeflow/object_store.py); a task that raises
    # fails all the same, its traceback printed.
    object_store.exit_process(main(sys.argv[1:]))
