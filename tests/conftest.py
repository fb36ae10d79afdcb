import os

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

from tests.helpers import analyze_and_transform, encode_image, run_blessed_pipeline  # noqa: E402


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
