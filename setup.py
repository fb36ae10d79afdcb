"""The cats-vs-dogs ResNet pipeline on TFX, as an installable package.

Dependencies are pinned in requirements.lock (installed by `make`), not here: TFX 1.16
declares Requires-Python <3.11 and only installs with --ignore-requires-python.
"""
from setuptools import find_packages, setup

setup(
    name="tfx-cats-dogs-resnet",
    version="0.1.0",
    description="A tested TFX pipeline training a ResNet on cats-vs-dogs images",
    packages=find_packages(include=["pipeline*", "components*", "models*", "data*", "kubeflow*",
                                    "reports*", "metadata*"]),
    package_data={"reports": ["templates/*.j2"]},  # the report's pages
    entry_points={"console_scripts": ["cats-dogs-report = reports.cli:main",
                                      "cats-dogs-predict = pipeline.predict:main"]},
    python_requires=">=3.11",
)
