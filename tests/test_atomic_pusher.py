"""The Pusher: a blessed model appears in the serving directory whole, or not at all."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import atomic_pusher, pushed_baseline

REPO_ROOT = Path(__file__).resolve().parents[1]


def graph(tmp_path: Path) -> bytes:
    """The graph file of the model `push_inputs(tmp_path)` makes: one of its own."""
    return f"graph of {tmp_path}".encode()


def push_inputs(tmp_path: Path, blessed: bool, serving: Path | None = None):
    """A model and its blessing, to push to `serving` (default: <tmp_path>/serving)."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model_dir = Path(model.uri, "Format-Serving")
    (model_dir / "variables").mkdir(parents=True)
    for index in range(20):
        (model_dir / "variables" / f"shard-{index}").write_bytes(os.urandom(1000))
    (model_dir / "saved_model.pb").write_bytes(graph(tmp_path))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(serving or tmp_path / "serving")))
    return (
        {standard_component_specs.MODEL_KEY: [model],
         standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )


def served_versions(serving: Path) -> dict[str, bytes]:
    """{version: its graph file}: what a model server sees (numbered folders only)."""
    return {name: (serving / name / "saved_model.pb").read_bytes()
            for name in os.listdir(serving) if atomic_pusher.is_version(name)}


def test_a_blessed_model_is_pushed_whole_and_leftovers_are_cleaned(tmp_path):
    leftover = tmp_path / "serving" / ".incoming-123"
    leftover.mkdir(parents=True)
    stale = time.time() - atomic_pusher.STALE_STAGING_AGE_S - 60
    os.utime(leftover, (stale, stale))
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    atomic_pusher.Executor().Do(inputs, outputs, properties)

    [version] = served_versions(tmp_path / "serving")
    assert not leftover.exists()
    pushed = tmp_path / "serving" / version
    assert sorted(os.listdir(pushed / "variables")) == sorted(f"shard-{i}" for i in range(20))
    assert (pushed / "saved_model.pb").read_bytes() == graph(tmp_path)
    pushed_model = outputs[standard_component_specs.PUSHED_MODEL_KEY][0]
    assert pushed_model.get_int_custom_property("pushed") == 1
    assert pushed_model.get_string_custom_property("pushed_destination") == str(pushed)


def test_an_unblessed_model_is_not_pushed(tmp_path):
    inputs, outputs, properties = push_inputs(tmp_path, blessed=False)
    atomic_pusher.Executor().Do(inputs, outputs, properties)
    assert not (tmp_path / "serving").exists()
    assert outputs[standard_component_specs.PUSHED_MODEL_KEY][0].get_int_custom_property(
        "pushed") == 0


def push_in_a_process(inputs, outputs, properties, copy_delay_s: float,
                      frozen_time: int | None = None,
                      start_signal: Path | None = None) -> subprocess.Popen:
    """The push, in a process of its own whose every file copy is slow, optionally with a
    clock stopped at `frozen_time`; it prints "pushing", then waits for the file
    `start_signal` to exist, if given, and pushes."""
    artifacts = {key: [artifact.mlmd_artifact.SerializeToString().hex()
                       for artifact in value] for key, value in {**inputs, **outputs}.items()}
    script = textwrap.dedent(f"""
        import json, os, time
        from ml_metadata.proto import metadata_store_pb2
        from tfx.types import standard_artifacts
        from tfx.utils import io_utils
        from components import atomic_pusher, pushed_baseline

        copy = io_utils.fileio.copy
        def slow_copy(*args, **kwargs):
            time.sleep({copy_delay_s})
            return copy(*args, **kwargs)
        io_utils.fileio.copy = slow_copy
        if {frozen_time} is not None:
            atomic_pusher.time = type("StoppedClock", (), {{"time": lambda: {frozen_time}}})

        types = {{"model": standard_artifacts.Model, "model_blessing":
                  standard_artifacts.ModelBlessing, "pushed_model": standard_artifacts.PushedModel}}
        def load(key, blob):
            artifact = types[key]()
            artifact.set_mlmd_artifact(metadata_store_pb2.Artifact.FromString(bytes.fromhex(blob)))
            return artifact
        artifacts = {{key: [load(key, blob) for blob in blobs]
                      for key, blobs in json.loads({json.dumps(json.dumps(artifacts))}).items()}}
        print("pushing", flush=True)
        while {str(start_signal)!r} != "None" and not os.path.exists({str(start_signal)!r}):
            time.sleep(0.01)
        atomic_pusher.Executor().Do(
            {{key: artifacts[key] for key in ("model", "model_blessing")}},
            {{"pushed_model": artifacts["pushed_model"]}}, {properties!r})
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})


def test_a_push_killed_midway_leaves_no_partial_version(tmp_path):
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    process = push_in_a_process(inputs, outputs, properties, copy_delay_s=0.2)
    assert process.stdout.readline().strip() == "pushing"
    serving = tmp_path / "serving"
    deadline = time.monotonic() + 60
    while not any(serving.glob(".incoming-*/variables/shard-*")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    [staging] = serving.glob(".incoming-*")  # named after the host and process that own it
    assert staging.name.endswith(f"-{socket.gethostname()}-{process.pid}")
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert served_versions(serving) == {}
    # The next push clears the remains and lands whole.
    atomic_pusher.Executor().Do(*push_inputs(tmp_path / "again", blessed=True, serving=serving))
    assert list(served_versions(serving).values()) == [graph(tmp_path / "again")]
    assert not any(serving.glob(".incoming-*"))


def test_concurrent_pushes_in_the_same_second_all_land_whole_under_rising_versions(tmp_path):
    serving, start_signal = tmp_path / "serving", tmp_path / "go"
    pushes = []
    for index in range(3):
        inputs, outputs, properties = push_inputs(tmp_path / f"push-{index}", blessed=True,
                                                  serving=serving)
        pushes.append(push_in_a_process(inputs, outputs, properties, copy_delay_s=0.05,
                                        frozen_time=1_700_000_000, start_signal=start_signal))
    for process in pushes:  # all three ready: they start pushing at once
        assert process.stdout.readline().strip() == "pushing"
    start_signal.touch()
    for process in pushes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output

    served = served_versions(serving)
    assert sorted(served) == ["1700000000", "1700000001", "1700000002"]
    # Each model whole, under a version of its own; no staging folder left behind.
    assert sorted(served.values()) == sorted(graph(tmp_path / f"push-{i}") for i in range(3))
    assert all(len(os.listdir(serving / version / "variables")) == 20 for version in served)
    assert not any(serving.glob(".incoming-*"))
    assert pushed_baseline.latest_pushed_version(str(serving)) == "1700000002"


def test_a_clock_stepped_back_still_gives_a_higher_version(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    for index, now in enumerate([1_700_000_000, 1_600_000_000]):
        monkeypatch.setattr(atomic_pusher.time, "time", lambda: now)
        atomic_pusher.Executor().Do(*push_inputs(tmp_path / f"push-{index}", blessed=True,
                                                 serving=serving))
    assert served_versions(serving) == {"1700000000": graph(tmp_path / "push-0"),
                                        "1700000001": graph(tmp_path / "push-1")}


def test_a_folder_of_unicode_digits_is_not_taken_for_a_version(tmp_path):
    serving = tmp_path / "serving"
    (serving / "²").mkdir(parents=True)  # str.isdigit() is true, int() refuses it
    atomic_pusher.Executor().Do(*push_inputs(tmp_path, blessed=True))
    [version] = served_versions(serving)
    assert pushed_baseline.latest_pushed_version(str(serving)) == version


def test_versions_of_the_flat_layout_are_named_and_nothing_is_pushed(tmp_path):
    """Before each pipeline had its folder, every pipeline pushed into serving_model/."""
    serving_root = tmp_path / "serving_model"
    (serving_root / "1700000000").mkdir(parents=True)
    (serving_root / "1700000000" / "saved_model.pb").write_bytes(b"an older push")
    serving = serving_root / "cats-dogs-resnet"
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True, serving=serving)
    with pytest.raises(RuntimeError, match=rf"{serving_root} holds model versions directly "
                                           r"\(1700000000\).*nothing was pushed"):
        atomic_pusher.Executor().Do(inputs, outputs, properties)
    assert not serving.exists()
    with pytest.raises(RuntimeError, match="holds model versions directly"):
        pushed_baseline.latest_pushed_version(str(serving))


def test_cleanup_removes_only_staging_folders_whose_owner_is_gone(tmp_path):
    serving, host = tmp_path / "serving", socket.gethostname()
    ended = subprocess.Popen(["true"])
    ended.wait()
    live = serving / f".incoming-1-{host}-{os.getpid()}"
    dead = serving / f".incoming-2-{host}-{ended.pid}"
    other_host_busy = serving / ".incoming-3-other-host-1"
    other_host_stale = serving / ".incoming-4-other-host-1"
    for folder in (live, dead, other_host_busy, other_host_stale):
        (folder / "variables").mkdir(parents=True)
    stale = time.time() - atomic_pusher.STALE_STAGING_AGE_S - 60
    for path in (other_host_stale / "variables", other_host_stale):
        os.utime(path, (stale, stale))

    atomic_pusher.remove_interrupted_pushes(str(serving))
    assert sorted(serving.glob(".incoming-*")) == [live, other_host_busy]


def test_an_incomplete_staged_copy_is_never_renamed_into_place(tmp_path, monkeypatch):
    """As when another host's cleanup deletes files from a live staging folder."""
    copy_dir = atomic_pusher.io_utils.copy_dir

    def copy_losing_the_graph(source, destination):
        copy_dir(source, destination)
        (Path(destination) / "saved_model.pb").unlink()
    monkeypatch.setattr(atomic_pusher.io_utils, "copy_dir", copy_losing_the_graph)
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    with pytest.raises(RuntimeError, match=r"is incomplete \(missing or of another size: "
                                           r"saved_model.pb\): not pushed"):
        atomic_pusher.Executor().Do(inputs, outputs, properties)
    assert served_versions(tmp_path / "serving") == {}


def test_a_push_served_before_its_archive_copy_fails_is_recorded_as_pushed(tmp_path,
                                                                            monkeypatch):
    """Disk full after the rename: the model is served, so MLMD must say so."""
    inputs, outputs, properties = push_inputs(tmp_path, blessed=True)
    copy_dir = atomic_pusher.io_utils.copy_dir

    def copy_failing_into_the_archive(source, destination):
        if destination == str(tmp_path / "pushed"):
            raise OSError(28, "No space left on device")
        copy_dir(source, destination)
    monkeypatch.setattr(atomic_pusher.io_utils, "copy_dir", copy_failing_into_the_archive)
    atomic_pusher.Executor().Do(inputs, outputs, properties)

    [version] = served_versions(tmp_path / "serving")
    pushed_model = outputs[standard_component_specs.PUSHED_MODEL_KEY][0]
    assert pushed_model.get_int_custom_property("pushed") == 1
    assert pushed_model.get_string_custom_property("pushed_version") == version
