"""The Pusher: a blessed model appears in the serving directory whole, or not at all."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import atomic_pusher

REPO_ROOT = Path(__file__).resolve().parents[1]


def push_inputs(tmp_path: Path, blessed: bool):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    serving = Path(model.uri, "Format-Serving")
    (serving / "variables").mkdir(parents=True)
    for index in range(20):
        (serving / "variables" / f"shard-{index}").write_bytes(os.urandom(1000))
    (serving / "saved_model.pb").write_bytes(b"graph")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving")))
    return (
        {standard_component_specs.MODEL_KEY: [model],
         standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )


def test_a_blessed_model_is_pushed_whole_and_leftovers_are_cleaned(tmp_path):
    leftover = tmp_path / "serving" / ".incoming-123"
    leftover.mkdir(parents=True)
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    atomic_pusher.Executor().Do(inputs, outputs, properties)

    [version] = os.listdir(tmp_path / "serving")
    assert version.isdigit()
    pushed = tmp_path / "serving" / version
    assert sorted(os.listdir(pushed / "variables")) == sorted(f"shard-{i}" for i in range(20))
    assert (pushed / "saved_model.pb").read_bytes() == b"graph"
    pushed_model = outputs[standard_component_specs.PUSHED_MODEL_KEY][0]
    assert pushed_model.get_int_custom_property("pushed") == 1
    assert pushed_model.get_string_custom_property("pushed_destination") == str(pushed)


def test_an_unblessed_model_is_not_pushed(tmp_path):
    inputs, outputs, properties = push_inputs(tmp_path, blessed=False)
    atomic_pusher.Executor().Do(inputs, outputs, properties)
    assert not (tmp_path / "serving").exists()
    assert outputs[standard_component_specs.PUSHED_MODEL_KEY][0].get_int_custom_property(
        "pushed") == 0


def test_a_push_killed_midway_leaves_no_partial_version(tmp_path):
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    artifacts = {key: [artifact.mlmd_artifact.SerializeToString().hex()
                       for artifact in value] for key, value in {**inputs, **outputs}.items()}
    # The push, in a process of its own whose every file copy is slow, killed midway.
    script = textwrap.dedent(f"""
        import json, time
        from ml_metadata.proto import metadata_store_pb2
        from tfx.types import standard_artifacts
        from tfx.utils import io_utils
        from components import atomic_pusher

        copy = io_utils.fileio.copy
        def slow_copy(*args, **kwargs):
            time.sleep(0.2)
            return copy(*args, **kwargs)
        io_utils.fileio.copy = slow_copy

        types = {{"model": standard_artifacts.Model, "model_blessing":
                  standard_artifacts.ModelBlessing, "pushed_model": standard_artifacts.PushedModel}}
        def load(key, blob):
            artifact = types[key]()
            artifact.set_mlmd_artifact(metadata_store_pb2.Artifact.FromString(bytes.fromhex(blob)))
            return artifact
        artifacts = {{key: [load(key, blob) for blob in blobs]
                      for key, blobs in json.loads({json.dumps(json.dumps(artifacts))}).items()}}
        print("pushing", flush=True)
        atomic_pusher.Executor().Do(
            {{key: artifacts[key] for key in ("model", "model_blessing")}},
            {{"pushed_model": artifacts["pushed_model"]}}, {properties!r})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    assert process.stdout.readline().strip() == "pushing"
    serving = tmp_path / "serving"
    deadline = time.monotonic() + 60
    while not any(serving.glob(".incoming-*/variables/shard-*")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert [name for name in os.listdir(serving) if not name.startswith(".")] == []
    # The next push clears the remains and lands whole.
    atomic_pusher.Executor().Do(*push_inputs(tmp_path / "again", blessed=True)[:2],
                                {**properties})
    [version] = os.listdir(serving)
    assert version.isdigit()
