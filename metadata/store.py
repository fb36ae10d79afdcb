"""The pipeline's ML Metadata (MLMD) store, opened read-only, and the ways through it.

TFX records each run as a `pipeline_run` context and each component as a `node` context
named `<pipeline>.<component id>`; an execution of a component reads and writes
artifacts, and an event links each artifact to the execution under a key (e.g.
"model", "blessing").
"""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

Artifact = metadata_store_pb2.Artifact
Context = metadata_store_pb2.Context
Event = metadata_store_pb2.Event
Execution = metadata_store_pb2.Execution
MetadataStore = metadata_store.MetadataStore

INPUT_EVENTS = (Event.INPUT, Event.DECLARED_INPUT)
OUTPUT_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT)
PIPELINE_RUN_CONTEXT = "pipeline_run"
COMPONENT_CONTEXT = "node"
# How long reading waits for another process's write to the store to end: TFX's writes
# are short transactions, so a store locked longer is held by something else.
LOCK_WAIT_S = 5.0


class MetadataUnreadable(LookupError):
    """The store's file exists but is locked by another process, corrupt, or no MLMD store."""


def open_store(metadata_path: str) -> MetadataStore:
    """The SQLite store at `metadata_path`, read-only: reading never creates or changes it."""
    if not Path(metadata_path).exists():
        raise LookupError(f"No pipeline run recorded: {metadata_path} does not exist.")
    _check_readable(metadata_path)
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return MetadataStore(connection)


def _check_readable(metadata_path: str) -> None:
    """Raises MetadataUnreadable, naming the file, unless it is an MLMD store that can be
    read now. MLMD itself waits ~40 s on a locked file, then raises "Concurrent writes
    aborted", and answers a corrupt or empty one with the SQLite error of its schema's
    creation."""
    uri = f"{Path(metadata_path).absolute().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S)) as database:
            tables = {name for (name,) in database.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        if error.sqlite_errorname in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            raise MetadataUnreadable(
                f"The metadata store {metadata_path} is locked by another process (a run "
                f"writing to it?) for more than {LOCK_WAIT_S:.0f} s: try again later."
            ) from None
        raise MetadataUnreadable(f"The metadata store {metadata_path} cannot be read "
                                 f"({error}): corrupt, or not an MLMD store.") from None
    if "MLMDEnv" not in tables:
        raise MetadataUnreadable(f"The metadata store {metadata_path} is empty or not an "
                                 "MLMD store (no MLMD tables).")


def property_value(node: Artifact | Context | Execution, name: str, default=None):
    """A custom or declared property of an MLMD artifact, context or execution, whatever
    its type."""
    for properties in (node.custom_properties, node.properties):
        if name in properties:
            value = properties[name]
            return getattr(value, value.WhichOneof("value"))
    return default


def pipeline_runs(store: MetadataStore) -> list[Context]:
    """Every run recorded in the store, oldest first: in the order MLMD recorded them (its
    ids count up), which a clock stepped back does not change as it does create times."""
    return sorted(store.get_contexts_by_type(PIPELINE_RUN_CONTEXT), key=lambda context: context.id)


def artifacts_of_type(store: MetadataStore, type_name: str,
                      run: Context | None = None) -> list[Artifact]:
    """The published artifacts of one type (e.g. "ModelEvaluation"), of one run or of all,
    oldest first."""
    # Looked for, not asked by name: MLMD raises for a type no component wrote yet.
    type_ids = {artifact_type.id for artifact_type in store.get_artifact_types()
                if artifact_type.name == type_name}
    if not type_ids:
        return []
    artifacts = (store.get_artifacts_by_context(run.id) if run
                 else store.get_artifacts_by_type(type_name))
    return sorted((artifact for artifact in artifacts
                   if artifact.type_id in type_ids and artifact.state == Artifact.LIVE),
                  key=lambda artifact: artifact.id)


def producer(store: MetadataStore, artifact: Artifact) -> Execution:
    """The execution that wrote the artifact (the first: a cached rerun records it too)."""
    execution_id = min(event.execution_id
                       for event in store.get_events_by_artifact_ids([artifact.id])
                       if event.type in OUTPUT_EVENTS)
    [execution] = store.get_executions_by_id([execution_id])
    return execution


def artifacts_by_key(store: MetadataStore, execution: Execution,
                     event_types=OUTPUT_EVENTS) -> dict[str, Artifact]:
    """The execution's output (or, with INPUT_EVENTS, input) artifacts by their key."""
    events = [event for event in store.get_events_by_execution_ids([execution.id])
              if event.type in event_types]
    artifacts = {artifact.id: artifact
                 for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return {event.path.steps[0].key: artifacts[event.artifact_id] for event in events}


def run_of(store: MetadataStore, execution: Execution) -> Context:
    [run] = [context for context in store.get_contexts_by_execution(execution.id)
             if context.type == PIPELINE_RUN_CONTEXT]
    return run


def component_of(store: MetadataStore, execution: Execution, pipeline_name: str) -> str:
    """The id of the component that ran the execution, e.g. "Trainer"."""
    [node] = [context for context in store.get_contexts_by_execution(execution.id)
              if context.type == COMPONENT_CONTEXT]
    return node.name.removeprefix(f"{pipeline_name}.")


def component_states(store: MetadataStore, run_id: str, pipeline_name: str) -> dict[str, str]:
    """The execution state ("COMPLETE", "CACHED", "RUNNING"...) of each component of a run."""
    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    return {component_of(store, execution, pipeline_name):
            Execution.State.Name(execution.last_known_state)
            for execution in store.get_executions_by_context(run.id)}


def newest_component_outputs(store: MetadataStore, pipeline_name: str,
                             component: str) -> dict[str, Artifact]:
    """The outputs, by key, of the component's newest execution that has any (a cached
    execution records the outputs it reused)."""
    node = store.get_context_by_type_and_name(COMPONENT_CONTEXT, f"{pipeline_name}.{component}")
    executions = store.get_executions_by_context(node.id) if node else []
    for execution in sorted(executions, key=lambda execution: execution.id, reverse=True):
        if outputs := artifacts_by_key(store, execution):
            return outputs
    return {}
