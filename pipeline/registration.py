"""Registering the pipeline with the TFX CLI, only when something changed since the last
time: `python -m pipeline.registration` (`make register`, run by `make pipeline`), and
each retraining cycle.

For the local engine, `tfx pipeline create` (or `update`) builds the pipeline once from
the runner file, to check it, and records the file's path under
LOCAL_HOME/<pipeline>/; `tfx run create` then runs that file afresh each time. So
registering again (about 30 s: the CLI loads TFX and builds the whole pipeline) tells
nothing new while the code the runner imports and the settings are those of the last
registration: their fingerprint, written beside the registration, says whether they are.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from models import console
from pipeline import source
from pipeline.config import PipelineConfig

LOCAL_RUNNER = source.REPO_ROOT / "pipeline" / "local_runner.py"
TFX_CLI = str(Path(sys.executable).with_name("tfx"))
# Beside the CLI's own pipeline_args.json.
FINGERPRINT_FILE = "registered_fingerprint"


def registry_dir(config: PipelineConfig) -> Path:
    """Where the TFX CLI records a registered local pipeline (LOCAL_HOME moves it)."""
    home = os.environ.get("LOCAL_HOME") or os.path.join(os.environ["HOME"], "tfx", "local")
    return Path(home, config.pipeline_name)


def is_registered(config: PipelineConfig) -> bool:
    return (registry_dir(config) / "pipeline_args.json").exists()


def fingerprint(config: PipelineConfig, repo: Path = source.REPO_ROOT) -> str:
    """Of the settings and of our packages' files (a superset of what the runner imports:
    a change to kubeflow/ or reports/ registers again too, 30 s spent rather than a
    change missed)."""
    settings = json.dumps(dataclasses.asdict(config), sort_keys=True).encode()
    return source.fingerprint(source.package_files(repo), repo, salt=settings)


def register(config: PipelineConfig) -> bool:
    """Registers the pipeline unless it is registered with this code and these settings.
    Returns whether it ran the CLI."""
    current = fingerprint(config)
    recorded = registry_dir(config) / FINGERPRINT_FILE
    if is_registered(config) and recorded.exists() and recorded.read_text() == current:
        return False
    action = "update" if is_registered(config) else "create"
    # The CLI's own lines go to the log (standard error), with the rest of its output.
    subprocess.run([TFX_CLI, "pipeline", action, "--engine=local",
                    f"--pipeline_path={LOCAL_RUNNER}"], check=True, stdout=sys.stderr)
    # Written after: `update` replaces the whole folder.
    recorded.write_text(current)
    return True


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    config = PipelineConfig.from_env()
    try:
        registered = register(config)
    except subprocess.CalledProcessError as error:  # the CLI has said why
        return error.returncode
    console.show(f"Pipeline {config.pipeline_name} " + (
        "registered with the TFX CLI (its code or settings changed)." if registered else
        "is registered with this code and these settings: nothing to update."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
