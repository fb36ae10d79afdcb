import os
import sys

import models  # noqa: F401  (first: it sets TensorFlow's environment, models/__init__.py)
import pytest

from tests.helpers import (BLESSED_RUN_GROUP, analyze_and_transform, encode_image,
                           run_blessed_pipeline)
from tests.s3_server import s3_server  # noqa: F401  (a fixture: SeaweedFS's S3 API)

# `make test` runs the suite in two pytest-xdist workers, handing them whole groups
# (`--dist loadgroup`). Every file is a group of its own, so that a module's fixtures run
# once, except where tests share something that must not run twice or side by side:
# the session's blessed pipeline run, and Flink's fixed ports (test_flink.py joins the
# blessed run's group, which holds test_flink_e2e.py).


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            group = (BLESSED_RUN_GROUP if "blessed_run" in item.fixturenames
                     else item.module.__name__)
            item.add_marker(pytest.mark.xdist_group(group))
    # The end-to-end groups first (a worker takes the groups in this order): the longest
    # work starts at once and the short unit tests fill in at the end.
    items.sort(key=lambda item: not item.get_closest_marker("e2e"))


def pytest_collection_finish(session):
    """xdist groups a test by a suffix it adds to the test's id; with a pytest where it
    cannot (9.2 with xdist 3.8) the groups' work would run twice and side by side."""
    if getattr(session.config.option, "loadgroup", False):
        ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
        if ungrouped:
            # A worker's exceptions reach the terminal as xdist's internal error only.
            print(f"pytest-xdist did not group {ungrouped[0]}: check that the pinned pytest "
                  "and pytest-xdist work together", file=sys.__stderr__)
            pytest.exit("ungrouped tests", returncode=4)


@pytest.fixture(scope="session")
def transformed_dataset(tmp_path_factory):
    """(raw examples, their transformed examples, transform graph dir as Transform writes it)."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from models import features

    raw = [{features.IMAGE_KEY: [encode_image(25 + i, 18, seed=i)], features.LABEL_KEY: [i % 2]}
           for i in range(6)]
    work_dir = tmp_path_factory.mktemp("transform")
    transformed, transform_fn, raw_metadata = analyze_and_transform(raw, work_dir / "tmp")
    output_dir = str(work_dir / "transform_output")
    _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(
        raw_metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return raw, transformed, output_dir


@pytest.fixture(scope="session")
def blessed_run(tmp_path_factory):
    """One pipeline run, through `make pipeline`, that blessed and pushed a model clearly
    better than chance: the end-to-end tests that read its outputs, or judge later runs
    against it, share it (see run_blessed_pipeline)."""
    return run_blessed_pipeline(tmp_path_factory.mktemp("blessed"))
