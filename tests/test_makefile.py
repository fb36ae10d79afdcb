"""The Makefile passes what a user types (RUN=..., CRON=...) to the commands as one
argument each, whatever it holds: never to a shell to run."""
import os
import subprocess

import pytest

from tests.helpers import REPO_ROOT

# Each fake command writes its arguments, NUL-separated, to $ARGUMENTS_FILE.
FAKE_COMMAND = ('#!/bin/sh\n'
                'for argument in "$@"; do printf "%s\\0" "$argument"; done > "$ARGUMENTS_FILE"\n')


@pytest.mark.parametrize("target, settings, expected", [
    ("report", {"RUN": "x; touch {marker}"}, ["x; touch {marker}"]),
    ("report", {"RUN": "r", "COMPARE_WITH": "`touch {marker}`"},
     ["r", "--compare-with", "`touch {marker}`"]),
    ("kubeflow-schedule", {"CRON": '0 0 3 * * 1"; touch {marker}; echo "'},
     ["-m", "kubeflow.submit", "schedule", "--cron", '0 0 3 * * 1"; touch {marker}; echo "']),
    ("kubeflow-unschedule", {"ID": "`touch {marker}`"},
     ["-m", "kubeflow.submit", "unschedule", "--id", "`touch {marker}`"]),
], ids=["run", "compare_with", "cron", "id"])
def test_a_value_with_shell_syntax_reaches_the_command_as_one_argument(
        tmp_path, target, settings, expected):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for command in ("python", "cats-dogs-report"):
        (fake_bin / command).write_text(FAKE_COMMAND)
        (fake_bin / command).chmod(0o755)
    marker = tmp_path / "injected"
    arguments = [f"{name}={value.format(marker=marker)}" for name, value in settings.items()]
    result = subprocess.run(["make", "-s", "-C", str(REPO_ROOT), target, f"BIN={fake_bin}",
                             *arguments], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ARGUMENTS_FILE": str(tmp_path / "arguments")})
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    received = (tmp_path / "arguments").read_text().split("\0")[:-1]
    assert received == [value.format(marker=marker) for value in expected]
