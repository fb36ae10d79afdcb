"""Registering the pipeline with the TFX CLI only when its code or settings changed."""
import dataclasses
import shutil

import pytest

from pipeline import registration, source
from pipeline.config import PipelineConfig

# A stand-in for the TFX CLI: records its action, and registers as the CLI does (a new
# pipeline_args.json in a folder of its own, which `update` replaces).
FAKE_TFX_CLI = """#!/bin/sh
echo "$2" >> "$CALLS_FILE"
rm -rf "$REGISTRY_DIR" && mkdir -p "$REGISTRY_DIR" && echo '{}' > "$REGISTRY_DIR/pipeline_args.json"
"""


@pytest.fixture
def cli_actions(tmp_path, monkeypatch):
    """The actions ("create", "update") the TFX CLI is asked for, in order."""
    fake_cli = tmp_path / "tfx"
    fake_cli.write_text(FAKE_TFX_CLI)
    fake_cli.chmod(0o755)
    monkeypatch.setattr(registration, "TFX_CLI", str(fake_cli))
    monkeypatch.setenv("LOCAL_HOME", str(tmp_path / "tfx_home"))
    monkeypatch.setenv("REGISTRY_DIR", str(tmp_path / "tfx_home" / "test-pipeline"))
    calls = tmp_path / "calls"
    monkeypatch.setenv("CALLS_FILE", str(calls))
    return lambda: calls.read_text().split() if calls.exists() else []


def test_registering_again_waits_for_a_change_of_settings(cli_actions):
    config = PipelineConfig(pipeline_name="test-pipeline")
    assert registration.register(config)
    assert not registration.register(config)
    stricter = dataclasses.replace(config, min_accuracy=0.8)
    assert registration.register(stricter)
    assert not registration.register(stricter)
    assert cli_actions() == ["create", "update"]


def test_a_pipeline_registered_without_a_fingerprint_is_registered_again(cli_actions):
    config = PipelineConfig(pipeline_name="test-pipeline")
    registry = registration.registry_dir(config)
    registry.mkdir(parents=True)
    (registry / "pipeline_args.json").write_text("{}")  # by hand, with the CLI
    assert registration.register(config)
    assert cli_actions() == ["update"]


def test_the_fingerprint_follows_the_code_the_runner_imports(tmp_path):
    repo = tmp_path / "repo"
    for package in source.PACKAGES:
        shutil.copytree(source.REPO_ROOT / package, repo / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    config = PipelineConfig()
    assert registration.fingerprint(config, repo) == registration.fingerprint(config)
    with (repo / "models" / "resnet.py").open("a") as module:
        module.write("# changed\n")
    assert registration.fingerprint(config, repo) != registration.fingerprint(config)
