"""The components' container image: what it holds, and the tag that names that content.

    python -m kubeflow.image    # prints the image reference (make kubeflow-image builds it)

An image given without a tag (CONTAINER_IMAGE=registry/ml/cats-dogs-resnet) is tagged
with the fingerprint of the files kubeflow/Dockerfile copies into it. The compiled spec
names that tag in every task, so a code change makes a new image everywhere: pods run
the code that was compiled, and KFP's cache (keyed by image, command and inputs) cannot
serve a result of older code.
"""
import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = "kubeflow/Dockerfile"
# What the Dockerfile copies into the image: the lock, the package and its sources.
IMAGE_FILES = ("requirements.lock", "setup.py", "pyproject.toml", DOCKERFILE)
IMAGE_PACKAGES = ("pipeline", "components", "models", "data", "kubeflow", "reports", "metadata")
FINGERPRINT_LENGTH = 12


def image_sources(repo: Path = REPO) -> list[Path]:
    """Every file whose content goes into the image, in a stable order."""
    sources = [repo / name for name in IMAGE_FILES]
    for package in IMAGE_PACKAGES:
        sources += sorted((repo / package).rglob("*.py"))
    return sources


def code_fingerprint(repo: Path = REPO) -> str:
    digest = hashlib.sha256()
    for path in image_sources(repo):
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def has_tag_or_digest(image: str) -> bool:
    name = image.rsplit("/", 1)[-1]  # a registry host may carry a port: host:5000/name
    return ":" in name or "@" in name


def image_reference(image: str, repo: Path = REPO) -> str:
    """`image` as given when it names a tag or digest, else tagged with the fingerprint."""
    return image if has_tag_or_digest(image) else f"{image}:{code_fingerprint(repo)}"


if __name__ == "__main__":
    from pipeline.config import PipelineConfig
    print(image_reference(PipelineConfig.from_env().container_image))
