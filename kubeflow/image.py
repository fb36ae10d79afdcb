"""The components' container image: what it holds, and the tag that names that content.

    python -m kubeflow.image                # the reference `make kubeflow-image` builds
    python -m kubeflow.image --variant gpu  # the GPU image's

An image given without a tag (CONTAINER_IMAGE=registry/ml/cats-dogs-resnet) is tagged
with the fingerprint of the files kubeflow/Dockerfile copies into it. The compiled spec
names that tag in every task, so a code change makes a new image everywhere: pods run
the code that was compiled, and KFP's cache (keyed by image, command and inputs) cannot
serve a result of older code.

Two variants come from the same files, so from one fingerprint: the CPU image, and the
GPU image (tag `<fingerprint>-gpu`), which adds TensorFlow's CUDA and cuDNN libraries
(requirements-gpu.lock) for a Trainer with GPUs.
"""
from pathlib import Path

from pipeline import source

DOCKERFILE = "kubeflow/Dockerfile"
# The GPU variant's packages, installed after the lock's.
GPU_LOCK = "requirements-gpu.lock"
# What the Dockerfile copies into the image besides our packages (source.PACKAGES): the
# locks and the package's description.
IMAGE_FILES = ("requirements.lock", GPU_LOCK, "setup.py", "pyproject.toml", DOCKERFILE)
FINGERPRINT_LENGTH = 12
# The Dockerfile's VARIANT build argument -> what the variant's tag ends with.
VARIANT_TAG_SUFFIXES = {"cpu": "", "gpu": "-gpu"}


def image_sources(repo: Path = source.REPO_ROOT) -> list[Path]:
    """Every file whose content the image installs, in a stable order: the report's
    templates as well as the modules."""
    return [repo / name for name in IMAGE_FILES] + source.package_files(repo)


def code_fingerprint(repo: Path = source.REPO_ROOT) -> str:
    return source.fingerprint(image_sources(repo), repo)[:FINGERPRINT_LENGTH]


def image_reference(image: str, repo: Path = source.REPO_ROOT, variant: str = "cpu") -> str:
    """The reference of `image`'s `variant`: tagged with the fingerprint, or with the tag
    `image` names, and the variant's suffix. A digest names one image: used as given."""
    name = image.rsplit("/", 1)[-1]  # a registry host may carry a port: host:5000/name
    if "@" in name:
        return image
    tagged = image if ":" in name else f"{image}:{code_fingerprint(repo)}"
    return tagged + VARIANT_TAG_SUFFIXES[variant]


if __name__ == "__main__":
    import argparse

    from pipeline.config import PipelineConfig
    parser = argparse.ArgumentParser(description="Prints the reference of CONTAINER_IMAGE.")
    parser.add_argument("--variant", choices=VARIANT_TAG_SUFFIXES, default="cpu",
                        help="gpu: the image with TensorFlow's CUDA libraries")
    print(image_reference(PipelineConfig.from_env().container_image,
                          variant=parser.parse_args().variant))
