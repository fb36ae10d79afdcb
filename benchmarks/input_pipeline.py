"""Input pipeline: the Trainer's tf.data input against the model's consumption.

The input (transformed TFRecords -> parsed, augmented batches: input_pipeline.training_input,
through the data accessor TFX gives run_fn; timed after its first pass, which parses the
split into memory) must deliver images at least 3x as fast as the model trains on them,
so that an accelerator never waits. Both at the pipeline's config
(environment variables as for `make pipeline`), on the newest Transform output of that
pipeline: run `make pipeline` first.

    python -m benchmarks.input_pipeline
"""
import argparse


import tensorflow as tf

from benchmarks import common
from benchmarks.model_speed import synthetic_input
from models import distribution, optimization
from pipeline.config import PipelineConfig

BATCHES = 30


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    config = PipelineConfig.from_env()
    model_config = config.model_config()
    strategy = distribution.distribution_strategy(model_config.distribution_strategy)
    global_batch = config.batch_size_per_replica * strategy.num_replicas_in_sync
    images = BATCHES * global_batch
    print(f"Machine: {common.machine()}")
    print(f"ResNet-{config.resnet_depth} x{config.width_multiplier}, "
          f"{config.image_size_px}x{config.image_size_px}, global batch {global_batch}")

    batches = iter(common.trainer_input(*common.latest_transform_outputs(config), global_batch))
    next(batches)  # parses the whole split into memory, as each training's first epoch does

    def read():
        for _ in range(BATCHES):
            next(batches)

    input_rate = common.images_per_second(read, images)

    with strategy.scope():
        # The schedule's length does not change the speed.
        model = optimization.build_and_compile_model(model_config, train_steps=1000)
    # Synthetic batches already in memory: the model's own speed, not its input's.
    dataset = synthetic_input(global_batch, config.image_size_px).prefetch(tf.data.AUTOTUNE)
    model.fit(dataset, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up
    model_rate = common.images_per_second(
        lambda: model.fit(dataset, steps_per_epoch=BATCHES, epochs=1, verbose=0), images)

    print(f"input: {input_rate:8.1f} images/s (transformed TFRecords -> augmented batches)")
    print(f"model: {model_rate:8.1f} images/s (train steps)")
    print(f"input ratio input/model: {input_rate / model_rate:.2f} (target >= 3)")


if __name__ == "__main__":
    main()
