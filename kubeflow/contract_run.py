"""Runs a compiled KFP v2 spec on this machine as open-source Kubeflow Pipelines would.

    make kubeflow-local    # = python -m kubeflow.contract_run: compile with local paths, run
    PUBLISH_LOGS=false make kubeflow-local    # as KFP 2.4, or an API server that sets it so

A check of our spec, not an orchestrator: the tasks run in dependency order, each as
KFP's launcher starts a container (the executor's exact `command` and `args` from the
spec, `{{$}}` replaced by the ExecutorInput JSON, in the environment kubeflow/Dockerfile
sets), and artifacts travel between tasks as KFP's driver and launcher carry them, through
ML Metadata. Each rule follows kubeflow/pipelines' backend at the tags named (2.4.0 and
2.17.0 agree unless a tag is given):

- Outputs are provisioned by the driver (backend/src/v2/driver/driver.go,
  provisionOutputs): `<pipeline root>/<pipeline>/<run id>/<task>/<salt>/<output>` (the run's
  root from metadata/client.go GetPipeline, the URI from GenerateOutputURI), with the
  component's declared type; from 2.5.0, with the API server's PUBLISH_LOGS (default
  true), also an `executor-logs` output of type `system.Artifact`, into which the launcher
  tees the task's output (component/launcher_v2.go, getLogWriter).
- After the task, the launcher merges what the executor output file says of each output
  (launcher_v2.go, uploadOutputArtifacts and mergeRuntimeArtifacts: its URI, its
  metadata keys) and records it in MLMD (metadata/client.go, RecordArtifact): metadata
  through converter.go's StructValueToMLMDValue (strings stay, numbers become doubles,
  bools ints, lists `{"list": ...}` and structs `{"struct": ...}`; null fails the task),
  plus `display_name` and `store_session_info`.
- A consumer's input artifacts are read back from MLMD (metadata/client.go,
  GetOutputArtifactsByExecutionId, `Schema: ""`; OutputArtifact.ToRuntimeArtifact;
  converter.go toRuntimeArtifact): named by their MLMD id, typed by an empty
  `instanceSchema`, every number a double.
- Parameters: constants, pipeline parameters and upstream tasks' output parameters
  (driver.go, resolveInputs), which the launcher records from the executor output's
  `parameterValues` (launcher_v2.go, collectOutputParameters); an output parameter is
  provisioned at `/tmp/kfp/outputs/<name>` (provisionOutputs; here in the task's folder).
- KFP's cache (driver.go at 2.4.0; driver/container.go in later releases): a task whose
  `cachingOptions.enableCache` is set gets a fingerprint, the SHA-256 of its cache key
  (cacheutils/cache.go, GenerateCacheKey and GenerateFingerPrint: kfp_cache_key,
  kfp_fingerprint below), looked up among the cache entries of the same pipeline name and
  namespace, newest first (GetExecutionCache, called by getFingerPrintsAndID). A hit is
  not run: the cached execution's output parameters and artifacts, the same MLMD
  artifacts, are its outputs (reuseCachedOutputs), so the tasks downstream get the same
  inputs and hit in turn. A miss runs, and once it succeeded becomes a cache entry
  (launcher_v2.go, Execute: CreateExecutionCache).
- Vertex AI Pipelines, for a spec that holds what only it runs (its source is not
  public: TFX's side of the contract is followed): TFX's ExampleGen driver hook,
  `lifecycle.preCacheCheck`, runs before the cache lookup with the task's ExecutorInput,
  and the parameters it writes (span, the input's fingerprint, the resolved input_config)
  become the task's, in its cache key too; its output file stays for TFX's entrypoint to
  read (tfx/orchestration/kubeflow/v2/file_based_example_gen/driver.py and
  container/kubeflow_v2_run_executor.py). A `resolver` task answers each output's
  ML Metadata filter (the subset TFX's compiler writes: `field=value` terms joined by AND,
  `*` ending a string, `{{$.inputs.artifacts[...].metadata[...]}}` filled from the task's
  input) with the newest LIVE artifact that matches, or none.

With no `cluster` state, every task runs: as on KFP's first run, no cache entry exists. A
`KfpCluster` carries KFP's MLMD and cache entries from run to run (the command line keeps
one in a file), as a cluster's scheduled runs share them. The image's Python is this
one (same lock); `python` in a command means it. The executor output file is the task's
own (in a pod, /tmp/kfp_outputs/output_metadata.json). Each task's ExecutorInput, executor
output and log are kept in the run's folder.

With `--kfp-driver` (a binary of kubeflow/kfp_driver/, built from kubeflow/pipelines'
source: the Go module proxy does not serve it) the rules above are not imitated: KFP's own
driver code builds each ExecutorInput from a real MLMD server, and records the outputs as
its launcher does. tests/test_kfp_driver_records.py replays what it recorded (in
tests/testdata/kfp_driver/) against the imitation and kubeflow/entrypoint.py.
"""
import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import yaml

from kubeflow import object_store
from kubeflow.image import DOCKERFILE
from pipeline.source import REPO_ROOT

# Placeholders this runner fills; a spec using others fails the check loudly.
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
# Each task's ExecutorInput, beside its log and executor output.
EXECUTOR_INPUT_FILE = "executor_input.json"
# The output the driver adds to every task from KFP 2.5.0 (driver.go, provisionOutputs).
LOGS_OUTPUT = "executor-logs"
LOGS_TYPE = {"schemaTitle": "system.Artifact"}


class TaskFailed(RuntimeError):
    pass


def image_environment(dockerfile: Path = REPO_ROOT / DOCKERFILE) -> dict[str, str]:
    """The `ENV name=value` settings of the image."""
    environment = {}
    for line in dockerfile.read_text().splitlines():
        match = re.fullmatch(r"ENV\s+(\w+)=(\S+)", line.strip())
        if match:
            environment[match[1]] = match[2]
    return environment


def task_order(tasks: dict[str, Any]) -> list[str]:
    """Task names, each after every task it depends on (dependentTasks and data)."""
    def upstream(task):
        producers = {source["taskOutputArtifact"]["producerTask"]
                     for source in task.get("inputs", {}).get("artifacts", {}).values()
                     if "taskOutputArtifact" in source}
        return set(task.get("dependentTasks", [])) | producers
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in done and upstream(task) <= done)
        if not ready:
            raise ValueError(f"Cyclic or dangling dependencies among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


def parameter_values(task: dict, pipeline_parameters: dict[str, Any],
                     task_output_parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values = {}
    for name, source in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in source:
            values[name] = source["runtimeValue"]["constant"]
        elif "componentInputParameter" in source:
            values[name] = pipeline_parameters[source["componentInputParameter"]]
        elif "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            values[name] = task_output_parameters[producer["producerTask"]][
                producer["outputParameterKey"]]
        else:
            raise ValueError(f"Unsupported parameter source {source} for {name}")
    return values


def kfp_cache_key(executor_input: dict, container: dict,
                  output_parameter_types: dict[str, str]) -> dict:
    """A task's cache key as protojson writes it (backend/src/v2/cacheutils/cache.go,
    GenerateCacheKey; driver.go, getFingerPrint): its input artifacts' names (MLMD ids),
    its input parameters' values, its outputs' types and metadata (not their URIs), its
    output parameters' types, its image, command and arguments (placeholders unfilled);
    from 2.15 also the PVCs it mounts, none here. Empty fields are left out, as protojson
    leaves them."""
    inputs, outputs = executor_input["inputs"], executor_input["outputs"]
    key = {
        "inputArtifactNames": {
            name: ({"artifactNames": [artifact["name"] for artifact in listed["artifacts"]]}
                   if listed.get("artifacts") else {})
            for name, listed in inputs.get("artifacts", {}).items()},
        "inputParameterValues": inputs.get("parameterValues", {}),
        "outputArtifactsSpec": {
            name: {field: listed["artifacts"][0][field] for field in ("name", "type", "metadata")
                   if listed["artifacts"][0].get(field)}
            for name, listed in outputs.get("artifacts", {}).items() if listed.get("artifacts")},
        "outputParametersSpec": {name: output_parameter_types[name]
                                 for name in outputs.get("parameters", {})},
        "containerSpec": {"image": container["image"],
                          "cmdArgs": container["command"] + container["args"]},
    }
    return {field: value for field, value in key.items() if value}


def kfp_fingerprint(cache_key: dict) -> str:
    """cacheutils.GenerateFingerPrint: the SHA-256 (hex) of the cache key's protojson
    formatted again by Go's encoding/json (go_json)."""
    return hashlib.sha256(go_json(cache_key).encode("utf-8")).hexdigest()


def go_json(value: Any) -> str:
    """What Go's json.Marshal writes of a value json.Unmarshal read into interface{}:
    keys sorted, no spaces, every number a float64 in Go's shortest form, and <, >, &,
    U+2028 and U+2029 escaped in strings (encoding/json's encode.go)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json(key)}:{go_json(value[key])}"
                              for key in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _go_float(float(value))
    escaped = json.dumps(value, ensure_ascii=False)
    for character, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                              ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        escaped = escaped.replace(character, escape)
    return escaped


def _go_float(number: float) -> str:
    """encoding/json's floatEncoder: strconv's shortest digits (Python's repr has the
    same), in 'f' form from 1e-6 to 1e21, else in 'e' form, e-07 written e-7."""
    digits = repr(number)
    if number == 0 or 1e-6 <= abs(number) < 1e21:
        digits = format(Decimal(digits), "f") if "e" in digits else digits
        return digits.removesuffix(".0")
    return digits.replace("e-0", "e-")


def mlmd_value(value: Any, key: str) -> tuple[str, Any]:
    """A metadata value as MLMD stores it (converter.go, StructValueToMLMDValue)."""
    if isinstance(value, bool):
        return "int_value", int(value)
    if isinstance(value, str):
        return "string_value", value
    if isinstance(value, (int, float)):
        return "double_value", float(value)
    if isinstance(value, list):
        return "struct_value", {"list": value}
    if isinstance(value, dict):
        return "struct_value", {"struct": value}
    raise TaskFailed(f"unable to produce MLMD artifact for output: metadata {key!r} is "
                     f"{value!r}: unknown/unsupported value type (KFP's launcher refuses "
                     "null)")


def runtime_value(kind: str, value: Any) -> Any:
    """An MLMD value as the driver hands it on (converter.go, toRuntimeArtifact)."""
    return float(value) if kind == "int_value" else value


@dataclass
class MetadataStore:
    """The artifacts and executions KFP's launcher recorded, as its driver reads them back."""
    artifacts: dict[int, dict] = field(default_factory=dict)
    # {execution id: {"outputs": {output name: artifact id}, "parameters": {...}}}
    executions: dict[int, dict] = field(default_factory=dict)

    def record(self, output_name: str, artifact: dict) -> int:
        """metadata/client.go RecordArtifact, of the launcher's merged output artifact."""
        properties = {key: mlmd_value(value, key)
                      for key, value in artifact.get("metadata", {}).items()}
        properties.setdefault("display_name", ("string_value", output_name))
        properties.setdefault("store_session_info", ("string_value", STORE_SESSION_INFO))
        artifact_id = max(self.artifacts, default=0) + 1
        self.artifacts[artifact_id] = {"uri": artifact["uri"], "properties": properties,
                                       "schema_title": schema_title(artifact.get("type", {}))}
        return artifact_id

    def record_execution(self, outputs: dict[str, Optional[int]],
                         parameters: dict[str, Any]) -> int:
        """PublishExecution: the task's output artifacts and output parameters."""
        execution_id = max(self.executions, default=0) + 1
        self.executions[execution_id] = {"outputs": outputs, "parameters": parameters}
        return execution_id

    def input_artifact(self, artifact_id: int) -> dict:
        """GetOutputArtifactsByExecutionId + ToRuntimeArtifact: the schema is lost."""
        recorded = self.artifacts[artifact_id]
        return {"name": str(artifact_id), "type": {"instanceSchema": ""},
                "uri": recorded["uri"],
                "metadata": {key: runtime_value(kind, value)
                             for key, (kind, value) in recorded["properties"].items()}}


def schema_title(artifact_type: dict) -> str:
    """`tfx.Model` of {"schemaTitle": ...} or of TFX's {"instanceSchema": "title: ..."}."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    match = re.search(r"^title: (\S+)$", artifact_type.get("instanceSchema", ""), re.MULTILINE)
    return match[1] if match else ""


@dataclass
class KfpCluster:
    """What outlives a run on a cluster: KFP's ML Metadata and the API server's cache
    entries ({"fingerprint", "pipeline_name", "namespace", "execution"}, oldest first)."""
    store: MetadataStore = field(default_factory=MetadataStore)
    cache_entries: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "KfpCluster":
        if not path.exists():
            return cls()
        saved = json.loads(path.read_text())
        integer_keys = lambda table: {int(key): value for key, value in table.items()}  # noqa: E731
        return cls(MetadataStore(
            artifacts={key: {**artifact, "properties": {name: tuple(value) for name, value
                                                         in artifact["properties"].items()}}
                       for key, artifact in integer_keys(saved["store"]["artifacts"]).items()},
            executions=integer_keys(saved["store"]["executions"])), saved["cache_entries"])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    def cached_execution(self, fingerprint: str, pipeline_name: str) -> Optional[int]:
        """cacheutils GetExecutionCache: the newest entry of this fingerprint, pipeline name
        and namespace."""
        matches = [entry["execution"] for entry in self.cache_entries
                   if (entry["fingerprint"], entry["pipeline_name"], entry["namespace"])
                   == (fingerprint, PIPELINE_NAME_PREFIX + pipeline_name, NAMESPACE)]
        return matches[-1] if matches else None

    def add_cache_entry(self, fingerprint: str, pipeline_name: str, execution_id: int) -> None:
        """CreateExecutionCache, as the launcher calls it after a task that missed."""
        self.cache_entries.append({"fingerprint": fingerprint, "namespace": NAMESPACE,
                                   "pipeline_name": PIPELINE_NAME_PREFIX + pipeline_name,
                                   "execution": execution_id})


# The launcher records objectstore.SessionInfo as JSON: the store's provider, endpoint and
# Secret. Nothing of ours reads it (kubeflow/entrypoint.py drops it): one stand-in value.
STORE_SESSION_INFO = json.dumps({"Provider": "", "Params": None})
# How the driver and the launcher name a run's pipeline and namespace in a cache entry.
PIPELINE_NAME_PREFIX = "pipeline/"
NAMESPACE = "kubeflow"


class ImitatedKfp:
    """KFP's driver and launcher, imitated by the rules in this module's docstring."""

    def __init__(self, spec: dict, run_id: str, pipeline_root: str,
                 parameters: dict[str, Any], publish_logs: bool, cluster: KfpCluster):
        self.spec, self.parameters, self.publish_logs = spec, parameters, publish_logs
        self.run_root = f"{pipeline_root.rstrip('/')}/{spec['pipelineInfo']['name']}/{run_id}"
        self.cluster = cluster
        self.store = cluster.store
        # {task: {output: artifact id, None where a resolver found none}}
        self.recorded: dict[str, dict[str, Optional[int]]] = {}
        self.output_parameters: dict[str, dict[str, Any]] = {}
        # Fingerprints of the tasks that missed the cache, for their cache entries.
        self.fingerprints: dict[str, str] = {}
        self.cached: list[str] = []

    def _input_artifacts(self, task: dict) -> dict:
        input_artifacts = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifact_id = self.recorded[producer["producerTask"]][producer["outputArtifactKey"]]
            input_artifacts[key] = {"artifacts": [] if artifact_id is None
                                    else [self.store.input_artifact(artifact_id)]}
        return input_artifacts

    def executor_input(self, name: str, output_file: Path) -> dict:
        """The ExecutorInput the driver builds for a container task (driver.go Container)."""
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            declared[LOGS_OUTPUT] = {"artifactType": LOGS_TYPE}
        salt = str(uuid.uuid4())  # uuid.NewString(), as the driver salts its outputs
        output_artifacts = {
            key: {"artifacts": [{"uri": f"{self.run_root}/{name}/{salt}/{key}",
                                 "type": definition["artifactType"],
                                 **({"metadata": definition["metadata"]}
                                    if "metadata" in definition else {})}]}
            for key, definition in declared.items()}
        output_parameters = {
            key: {"outputFile": str(output_file.parent / "outputs" / key)}
            for key in component.get("outputDefinitions", {}).get("parameters", {})}
        return {"inputs": {"parameterValues": parameter_values(task, self.parameters,
                                                               self.output_parameters),
                           "artifacts": self._input_artifacts(task)},
                "outputs": {"artifacts": output_artifacts, "parameters": output_parameters,
                            "outputFile": str(output_file)}}

    def served_from_cache(self, name: str, executor_input: dict) -> bool:
        """The driver's cache lookup (getFingerPrintsAndID) and, on a hit, the cached
        execution's outputs as this task's (reuseCachedOutputs). On a miss, the task's
        fingerprint is kept for its cache entry."""
        task = self.spec["root"]["dag"]["tasks"][name]
        if not task.get("cachingOptions", {}).get("enableCache"):
            return False
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        parameter_types = {key: definition["parameterType"] for key, definition in
                           component.get("outputDefinitions", {}).get("parameters", {}).items()}
        fingerprint = kfp_fingerprint(kfp_cache_key(executor_input, executor["container"],
                                                    parameter_types))
        pipeline_name = self.spec["pipelineInfo"]["name"]
        execution_id = self.cluster.cached_execution(fingerprint, pipeline_name)
        if execution_id is None:
            self.fingerprints[name] = fingerprint
            return False
        execution = self.store.executions[execution_id]
        # collectOutputArtifactMetadataFromCache: the outputs this task declares.
        self.recorded[name] = {key: execution["outputs"][key]
                               for key in executor_input["outputs"]["artifacts"]}
        self.output_parameters[name] = execution["parameters"]
        self.cached.append(name)
        return True

    def record(self, name: str, executor_input: dict) -> None:
        """What the launcher records of a task that succeeded (uploadOutputArtifacts),
        and its cache entry when it missed the cache."""
        output_file = Path(executor_input["outputs"]["outputFile"])
        written = json.loads(output_file.read_text()) if output_file.exists() else {}
        self.recorded[name] = {}
        for key, artifact_list in executor_input["outputs"]["artifacts"].items():
            [artifact] = artifact_list["artifacts"]
            reported = written.get("artifacts", {}).get(key, {}).get("artifacts", [{}])[0]
            merged = {"uri": reported.get("uri") or artifact["uri"], "type": artifact["type"],
                      "metadata": {**artifact.get("metadata", {}),
                                   **reported.get("metadata", {})}}
            self.recorded[name][key] = self.store.record(key, merged)
        self.output_parameters[name] = {key: written.get("parameterValues", {})[key]
                                        for key in executor_input["outputs"]["parameters"]}
        execution_id = self.store.record_execution(self.recorded[name],
                                                   self.output_parameters[name])
        fingerprint = self.fingerprints.get(name)
        if fingerprint:
            self.cluster.add_cache_entry(fingerprint, self.spec["pipelineInfo"]["name"],
                                         execution_id)

    def import_artifact(self, name: str, importer: dict) -> None:
        source = importer["artifactUri"]
        uri = (source["constant"] if "constant" in source
               else self.parameters[source["runtimeParameter"]])
        self.recorded[name] = {"artifact": self.store.record(
            "artifact", {"uri": uri, "metadata": importer.get("metadata", {})})}

    def resolve(self, name: str, resolver: dict) -> None:
        """A Vertex resolver task: each output, the newest artifact its filter matches."""
        inputs = self._input_artifacts(self.spec["root"]["dag"]["tasks"][name])
        self.recorded[name] = {
            key: newest_match(self.store, fill_input_placeholders(query["filter"], inputs))
            for key, query in resolver["outputArtifactQueries"].items()}

    def outputs(self) -> dict[str, dict[str, dict]]:
        """{task: {output: the artifact its consumers receive}}."""
        return {task: {key: self.store.input_artifact(artifact_id)
                       for key, artifact_id in outputs.items() if artifact_id is not None}
                for task, outputs in self.recorded.items()}


_INPUT_METADATA_PLACEHOLDER = re.compile(
    r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")


def fill_input_placeholders(query: str, input_artifacts: dict) -> Optional[str]:
    """The filter with each `{{$.inputs.artifacts['k'].metadata['m']}}` filled; None when
    an input it names has no artifact (then nothing can match)."""
    try:
        return _INPUT_METADATA_PLACEHOLDER.sub(
            lambda match: str(input_artifacts[match[1]]["artifacts"][0]["metadata"][match[2]]),
            query)
    except (KeyError, IndexError):
        return None


def newest_match(store: MetadataStore, query: Optional[str]) -> Optional[int]:
    """The newest LIVE artifact (all are: nothing here deletes) matching every term of
    `query`, a conjunction of `schema_title="..."`, `state=LIVE`, `uri="..."` (a trailing
    `*`: a prefix), `name="..."` and `metadata.<key>.<kind>_value=<value>`."""
    if query is None:
        return None
    terms = [re.fullmatch(r'\s*([\w.]+)\s*=\s*(?:"([^"]*)"|(\S+))\s*', term)
             for term in query.split(" AND ")]
    if not all(terms):
        raise TaskFailed(f"Resolver filter {query!r}: only `field=value` terms joined by "
                         "AND are imitated here.")

    def matches(artifact_id: int, field_name: str, value: str) -> bool:
        artifact = store.artifacts[artifact_id]
        if field_name == "state":
            return value == "LIVE"
        if field_name.startswith("metadata."):
            _, key, kind = field_name.split(".")
            kept = artifact["properties"].get(key)
            if not kept:
                return False
            return (float(kept[1]) == float(value) if kind == "number_value"
                    else str(kept[1]) == value)
        actual = {"schema_title": artifact["schema_title"], "uri": artifact["uri"],
                  "name": str(artifact_id)}[field_name]
        return (actual.startswith(value[:-1]) if value.endswith("*") else actual == value)

    found = [artifact_id for artifact_id in store.artifacts
             if all(matches(artifact_id, term[1], term[2] if term[2] is not None else term[3])
                    for term in terms)]
    return max(found, default=None)


class KfpDriver:
    """KFP's own driver code (kubeflow/kfp_driver/, built from kubeflow/pipelines' source)
    against a real MLMD server (kubeflow/mlmd_server.py): the ExecutorInput each task gets
    is the one KFP builds, and its outputs are recorded as KFP's launcher records them."""

    def __init__(self, binary: str, mlmd_address: str, spec_file: str, run_id: str,
                 pipeline_root: str, parameters: dict[str, Any], publish_logs: bool):
        self.binary, self.publish_logs = binary, publish_logs
        self.common = ["--mlmd", mlmd_address, "--spec", spec_file, "--run-id", run_id]
        self.as_input: dict[str, dict[str, dict]] = {}
        self.executions: dict[str, int] = {}
        self.cached: list[str] = []
        self.dag_execution_id = self._call(
            "root-dag", "--pipeline-root", pipeline_root,
            *[arg for name, value in parameters.items()
              for arg in ("--param", f"{name}={value if isinstance(value, str) else json.dumps(value)}")]
        )["execution_id"]

    def _call(self, command: str, *args: str) -> dict:
        result = subprocess.run([self.binary, command, *self.common, *args],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise TaskFailed(f"KFP's {command} driver refused: {result.stderr[-3000:]}")
        return json.loads(result.stdout)

    def executor_input(self, name: str, output_file: Path) -> dict:
        driven = self._call("container", "--task", name, "--dag-execution-id",
                            str(self.dag_execution_id),
                            *(["--publish-logs=true"] if self.publish_logs else []))
        self.executions[name] = driven["execution_id"]
        executor_input = driven["launcher_executor_input"]
        # The pod's own path (/tmp/kfp_outputs/... or /gcs/...): this task's folder here.
        executor_input["outputs"]["outputFile"] = str(output_file)
        return executor_input

    def served_from_cache(self, name: str, executor_input: dict) -> bool:
        """Without a cache table here, KFP's own lookup always misses."""
        return False

    def resolve(self, name: str, resolver: dict) -> None:
        raise TaskFailed(f"Task {name}: resolver executors are not run by open-source "
                         "Kubeflow Pipelines.")

    def record(self, name: str, executor_input: dict) -> None:
        input_file = Path(executor_input["outputs"]["outputFile"]).with_name(EXECUTOR_INPUT_FILE)
        published = self._call("publish", "--task", name, "--execution-id",
                               str(self.executions[name]), "--executor-input", str(input_file),
                               "--executor-output", executor_input["outputs"]["outputFile"])
        self.as_input[name] = {key: artifact["as_input"]
                               for key, artifact in published["output_artifacts"].items()}

    def import_artifact(self, name: str, importer: dict) -> None:
        imported = self._call("importer", "--task", name, "--dag-execution-id",
                              str(self.dag_execution_id))
        self.as_input[name] = {key: artifact["as_input"]
                               for key, artifact in imported["output_artifacts"].items()}

    def outputs(self) -> dict[str, dict[str, dict]]:
        return self.as_input


def read_spec(spec_file: str) -> tuple[dict, dict]:
    """The pipeline spec and its Kubernetes platform spec ({} when there is none): the
    two YAML documents of a compiled spec file, as KFP's API server reads them."""
    documents = [document for document in yaml.safe_load_all(Path(spec_file).read_text())
                 if document]
    spec, *platform = documents
    return spec, (platform[0] if platform else {})


class RunOutputs(dict):
    """{task: {output name: the artifact its consumers receive}}, and the tasks KFP's
    cache served (`cached`, in the order they came)."""

    def __init__(self, outputs: dict[str, dict[str, dict]], cached: list[str]):
        super().__init__(outputs)
        self.cached = cached


def run_spec(spec_file: str, pipeline_root: str, log_dir: str,
             parameters: Optional[dict[str, Any]] = None, publish_logs: bool = True,
             secrets: Optional[dict[str, dict[str, str]]] = None,
             kfp_driver: Optional[str] = None,
             cluster: Optional[KfpCluster] = None) -> RunOutputs:
    """Runs every task of the spec, each task's log, ExecutorInput and executor output
    under `log_dir`.

    `publish_logs`: the API server's PUBLISH_LOGS (the driver's --publish_logs), true by
    default from KFP 2.5.0; false is KFP 2.4.0. `secrets`: the namespace's Kubernetes
    Secrets ({name: {key: value}}) that the platform spec gives the pods as environment.
    `kfp_driver`: a kfp-driver binary (`make kfp-driver`): KFP's own driver, with a real
    MLMD server, in place of this module's imitation (which then needs a pipeline root on
    an object store, as KFP does). `cluster`: the imitation's MLMD and cache entries from
    earlier runs, which this run adds to (default: an empty one).
    """
    # Absolute: each task runs in its own folder, and writes its outputs where it is told.
    log_dir = os.path.abspath(log_dir)
    spec, platform = read_spec(spec_file)
    executor_configs = (platform.get("platforms", {}).get("kubernetes", {})
                        .get("deploymentSpec", {}).get("executors", {}))
    run_id = f"local-{uuid.uuid4().hex[:8]}"
    pipeline_parameters = {name: definition.get("defaultValue") for name, definition in
                           spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()}
    pipeline_parameters.update(parameters or {})
    run_dir = Path(log_dir) / run_id
    with contextlib.ExitStack() as stack:
        if kfp_driver:
            from kubeflow.mlmd_server import running_server
            mlmd_address = stack.enter_context(running_server())
            kfp = KfpDriver(kfp_driver, mlmd_address, spec_file, run_id, pipeline_root,
                            parameters or {}, publish_logs)
        else:
            kfp = ImitatedKfp(spec, run_id, pipeline_root, pipeline_parameters, publish_logs,
                              cluster or KfpCluster())
        tasks = spec["root"]["dag"]["tasks"]
        for name in task_order(tasks):
            component = spec["components"][tasks[name]["componentRef"]["name"]]
            executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
            if "importer" in executor:
                kfp.import_artifact(name, executor["importer"])
            elif "resolver" in executor:
                kfp.resolve(name, executor["resolver"])
            elif "container" in executor:
                task_dir = run_dir / name
                task_dir.mkdir(parents=True, exist_ok=True)
                executor_input = kfp.executor_input(name, task_dir / "executor_output.json")
                environment = pod_environment(
                    executor["container"], executor_configs.get(component["executorLabel"], {}),
                    secrets or {})
                pre_cache_check = executor["container"].get("lifecycle", {}).get("preCacheCheck")
                if pre_cache_check:
                    _run_pre_cache_check(name, pre_cache_check, executor_input, task_dir,
                                         environment)
                (task_dir / EXECUTOR_INPUT_FILE).write_text(json.dumps(executor_input, indent=1))
                if kfp.served_from_cache(name, executor_input):
                    continue
                _run_container(name, executor["container"], executor_input, task_dir,
                               environment)
                kfp.record(name, executor_input)
            else:
                raise TaskFailed(f"Task {name}: {sorted(executor)} executors are not run here.")
        return RunOutputs(kfp.outputs(), kfp.cached)


def _run_pre_cache_check(name: str, hook: dict, executor_input: dict, task_dir: Path,
                         environment: dict[str, str]) -> None:
    """Vertex's run of TFX's ExampleGen driver hook: the parameters it writes to the
    executor output file become the task's (file_based_example_gen/driver.py, _run_driver:
    "The CAIP Pipelines service will update the task's properties ... prior to running
    the executor")."""
    log_file = task_dir / "pre_cache_check_log.txt"
    if _run_command(hook["command"] + hook["args"], executor_input, task_dir, environment,
                    log_file) != 0:
        raise TaskFailed(f"Task {name}'s preCacheCheck hook failed (log: {log_file}):\n"
                         f"{log_file.read_text()[-3000:]}")
    written = json.loads(Path(executor_input["outputs"]["outputFile"]).read_text())
    executor_input["inputs"]["parameterValues"].update(written.get("parameterValues", {}))


def pod_environment(container: dict, kubernetes_config: dict,
                    secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment KFP gives a task's pod beside the image's: the container's `env`
    (driver.go, initPodSpecPatch) and the platform spec's `secretAsEnv` entries
    (extendPodSpecPatch: each key of the named Secret as a variable)."""
    environment = {variable["name"]: variable["value"] for variable in container.get("env", [])}
    for secret in kubernetes_config.get("secretAsEnv", []):
        name = secret["secretName"]
        if name not in secrets:
            raise TaskFailed(f"The pod's Secret {name!r} does not exist (Kubernetes: "
                             "CreateContainerConfigError): give it in `secrets`.")
        for key_to_env in secret["keyToEnv"]:
            environment[key_to_env["envVar"]] = secrets[name][key_to_env["secretKey"]]
    return environment


def _run_container(name: str, container: dict, executor_input: dict, task_dir: Path,
                   environment: dict[str, str]) -> None:
    """Runs the task's container command as the launcher does (launcher_v2.go, execute)."""
    log_file = task_dir / "log.txt"
    returncode = _run_command(container["command"] + container["args"], executor_input,
                              task_dir, environment, log_file)
    output_artifacts = executor_input["outputs"]["artifacts"]
    if LOGS_OUTPUT in output_artifacts:
        _write_logs(log_file, output_artifacts[LOGS_OUTPUT]["artifacts"][0]["uri"], environment)
    if returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise TaskFailed(f"Task {name} exited {returncode} (log: {log_file}):\n{tail}")


def _run_command(command_and_args: list[str], executor_input: dict, task_dir: Path,
                 environment: dict[str, str], log_file: Path) -> int:
    """A command of the task's image, `{{$}}` filled, in the pod's environment."""
    executor_input_json = json.dumps(executor_input)
    command = [_fill(part, executor_input_json) for part in command_and_args]
    if command[0] == "python":
        command[0] = sys.executable
    with open(log_file, "w") as log:
        return subprocess.run(command, cwd=task_dir, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **image_environment(), **environment}).returncode


def _write_logs(log_file: Path, uri: str, environment: dict[str, str]) -> None:
    """What the launcher's log writer leaves at the executor-logs URI (getLogWriter):
    uploaded by an S3 client of its own with the pod's settings, as the launcher's is."""
    if not object_store.is_object_store_uri(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, uri)
        return
    import boto3

    bucket, key = object_store.tensorflow_uri(uri)[len("s3://"):].split("/", 1)
    client = boto3.client("s3", endpoint_url=environment.get("AWS_ENDPOINT_URL_S3"),
                          region_name=environment.get("AWS_REGION"),
                          aws_access_key_id=environment.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=environment.get("AWS_SECRET_ACCESS_KEY"))
    client.upload_file(str(log_file), bucket, key)


def _fill(argument: str, executor_input_json: str) -> str:
    unknown = set(re.findall(r"\{\{\$[^}]*\}\}", argument)) - {EXECUTOR_INPUT_PLACEHOLDER}
    if unknown:
        raise TaskFailed(f"Placeholders this check does not fill: {sorted(unknown)}")
    return argument.replace(EXECUTOR_INPUT_PLACEHOLDER, executor_input_json)


def main(argv: list[str]) -> int:
    from kubeflow.runner import compile_pipeline
    from pipeline.config import PipelineConfig

    parser = argparse.ArgumentParser(prog="python -m kubeflow.contract_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec-dir", help="where the spec, the imitated cluster's state and "
                        "each task's files go (default: the config's kubeflow_spec_dir, under "
                        "OUTPUT_DIR)")
    parser.add_argument("--publish-logs", choices=("true", "false"),
                        default=os.environ.get("PUBLISH_LOGS", "true"),
                        help="the API server's PUBLISH_LOGS: true adds the driver's "
                             "executor-logs output to every task, as KFP 2.5 and later do "
                             "by default; false is KFP 2.4 (default: $PUBLISH_LOGS, else true)")
    parser.add_argument("--kfp-driver", default=os.environ.get("KFP_DRIVER"),
                        help="a kfp-driver binary (make kfp-driver KFP_SRC=...): KFP's own "
                             "driver instead of this module's imitation (default: $KFP_DRIVER)")
    parser.add_argument("--secret", nargs="+", action="append", default=[],
                        metavar=("NAME", "KEY=VALUE"),
                        help="a Kubernetes Secret the spec's platform config gives the pods, "
                             "e.g. --secret mlpipeline-minio-artifact accesskey=... "
                             "secretkey=... for a minio:// OUTPUT_DIR (repeatable)")
    parser.add_argument("--cluster-state",
                        help="the file that keeps the imitated cluster's MLMD and cache "
                             "entries from run to run, as a cluster's scheduled runs share "
                             "them (default: <spec dir>/kfp_cluster.json; remove it for an "
                             "empty cluster)")
    args = parser.parse_args(argv)
    secrets = {name: dict(item.split("=", 1) for item in items)
               for name, *items in args.secret}
    config = PipelineConfig.from_env()
    config.check_data_root_exists()
    spec_dir = args.spec_dir or config.kubeflow_spec_dir
    cluster_state = Path(args.cluster_state or os.path.join(spec_dir, "kfp_cluster.json"))
    # The explicit switch: this spec names this machine's paths, for this check alone.
    spec_file = compile_pipeline(config, spec_dir, allow_local_paths=True)
    print(f"Compiled {spec_file}; running its tasks under KFP's execution contract...")
    cluster = KfpCluster.load(cluster_state)
    # The executor-logs output is open-source KFP's driver's: Vertex adds none.
    publish_logs = args.publish_logs == "true" and config.kfp_target == "kubeflow"
    started = time.monotonic()
    outputs = run_spec(spec_file, config.pipeline_root, os.path.join(spec_dir, "runs"),
                       publish_logs=publish_logs, secrets=secrets,
                       kfp_driver=args.kfp_driver, cluster=cluster)
    cluster.save(cluster_state)
    ran = [task for task in task_order(read_spec(spec_file)[0]["root"]["dag"]["tasks"])
           if task not in outputs.cached]
    print(f"Run took {time.monotonic() - started:.0f} s. Ran: {', '.join(ran)}. From KFP's "
          f"cache: {', '.join(outputs.cached) or 'nothing'}.")
    blessing = outputs["Evaluator"]["blessing"]["metadata"]
    pushed = outputs["Pusher"]["pushed_model"]["metadata"]
    print(f"Publish logs: {str(publish_logs).lower()}. Blessed: {bool(blessing.get('blessed'))}; baseline: "
          f"{blessing.get('baseline_model') or 'none'}; pushed: "
          f"{pushed.get('pushed_destination') or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
