"""Every command a user can start (`python -m` modules, console scripts) answers --help
with its usage and exits 0, without doing any of its work."""
import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import REPO_ROOT

PACKAGES = ("pipeline", "components", "models", "data", "kubeflow", "reports", "metadata",
            "benchmarks")
# kubeflow/ is other work's, under way: its runner still compiles the pipeline on --help.
NOT_YET = {"kubeflow.runner"}


def module_entry_points() -> list[str]:
    """Modules with an `if __name__ == "__main__":` block."""
    modules = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE):
                modules.append(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
    return modules


def console_scripts() -> list[str]:
    """setup.py's console_scripts, as `module:function`."""
    setup = ast.parse((REPO_ROOT / "setup.py").read_text())
    scripts = next(node for node in ast.walk(setup) if isinstance(node, ast.Dict)
                   and any(isinstance(key, ast.Constant) and key.value == "console_scripts"
                           for key in node.keys)).values[0]
    return [element.value.split("=")[1].strip() for element in scripts.elts]


def help_of(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})


def test_every_entry_point_answers_help_with_its_usage():
    commands = {module: [sys.executable, "-m", module, "--help"]
                for module in module_entry_points() if module not in NOT_YET}
    for script in console_scripts():
        module, function = script.split(":")
        commands[script] = [sys.executable, "-c",
                            f"import sys; sys.argv[0] = {script!r}; from {module} import "
                            f"{function}; sys.exit({function}())", "--help"]
    assert {"pipeline.history", "pipeline.settings", "pipeline.local_runner",
            "reports.cli:main"} <= commands.keys()
    # Side by side: most of the time is imports.
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(commands, pool.map(help_of, commands.values())))
    failures = {name: (result.returncode, result.stdout[-300:], result.stderr[-300:])
                for name, result in results.items()
                if result.returncode != 0 or not result.stdout.startswith("usage: ")}
    assert not failures

