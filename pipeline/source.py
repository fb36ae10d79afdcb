"""This checkout's own code: where it lies, its packages, and a fingerprint of their files.

Imports nothing of TFX or TensorFlow: the settings tools and kubeflow/image.py read it.
"""
import hashlib
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
# Our packages, and the files of each that setup.py installs besides its modules (its
# package_data): what the container image holds, and what the local runner may import.
# tests/test_kubeflow.py checks both against setup.py.
PACKAGES = ("pipeline", "components", "models", "data", "kubeflow", "reports", "metadata")
PACKAGE_DATA = {"reports": ("templates/*.j2",)}


def package_files(repo: Path = REPO_ROOT) -> list[Path]:
    """Every file of our packages that setup.py installs, in a stable order."""
    files = []
    for package in PACKAGES:
        files += sorted((repo / package).rglob("*.py"))
        for pattern in PACKAGE_DATA.get(package, ()):
            files += sorted((repo / package).glob(pattern))
    return files


def fingerprint(files: Iterable[Path], repo: Path = REPO_ROOT, salt: bytes = b"") -> str:
    """The SHA-256 of `salt` and of each file's path (relative to `repo`) and content."""
    digest = hashlib.sha256(salt)
    for path in files:
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
