"""CPU kernels: the Trainer's step with oneDNN's kernels against TensorFlow's own (Eigen).

TensorFlow reads TF_ENABLE_ONEDNN_OPTS when it is imported (it logs the setting then)
and turns oneDNN on by itself only on CPUs with AVX-512; the project turns it on
everywhere (models/__init__.py). Each setting runs in a process of its own: our ResNet
with the pipeline's config (its augmentation, batch and optimizer) on synthetic images.
The processes alternate, and the ratio is the median of the rounds' ratios, so that a
noisy spell of a shared machine does not decide it.

    python -m benchmarks.cpu_kernels                    # the pipeline's default input size
    python -m benchmarks.cpu_kernels --image-size-px 64

Ends with the line `train speed oneDNN on/off: X.XX`.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys

from pipeline.config import PipelineConfig

SETTINGS = {"off": "0", "on": "1"}


def measure(image_size_px: int, steps: int) -> dict[str, float]:
    """Images a second of the Trainer's train step and of inference, in this process."""
    # TensorFlow only here: the parent process must not import it.
    import numpy as np
    import tensorflow as tf

    from benchmarks import common
    from models import input_pipeline, optimization

    config = dataclasses.replace(PipelineConfig(image_size_px=image_size_px).model_config(),
                                 mixed_precision="off", jit_compile="off")
    batch = config.batch_size_per_replica
    images = np.random.default_rng(0).normal(
        size=(batch, image_size_px, image_size_px, 3)).astype(np.float32)
    labels = np.arange(batch) % 2
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    augmented = dataset.map(lambda image, label: (input_pipeline.augment(image), label)).prefetch(2)
    model = optimization.build_and_compile_model(config, train_steps=10 * steps)
    model.fit(augmented, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing
    model.predict(dataset, steps=2, verbose=0)

    return {"train": common.images_per_second(
                lambda: model.fit(augmented, steps_per_epoch=steps, epochs=1, verbose=0),
                steps * batch, repeats=1),
            "inference": common.images_per_second(
                lambda: model.predict(dataset, steps=steps, verbose=0), steps * batch, repeats=1)}


def measure_in_child(setting: str, args: argparse.Namespace) -> dict[str, float]:
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": SETTINGS[setting],
                   "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cpu_kernels", "--child",
         "--image-size-px", str(args.image_size_px), "--steps", str(args.steps)],
        env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"The oneDNN {setting} process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size-px", type=int, default=PipelineConfig.image_size_px)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.image_size_px, args.steps)))
        return

    print(f"{os.cpu_count()} CPU cores; ResNet with the pipeline's defaults at "
          f"{args.image_size_px}x{args.image_size_px}, {args.steps} steps a process")
    ratios = {"train": [], "inference": []}
    for round_index in range(args.rounds):
        order = list(SETTINGS) if round_index % 2 == 0 else list(reversed(SETTINGS))
        figures = {setting: measure_in_child(setting, args) for setting in order}
        for kind in ratios:
            ratios[kind].append(figures["on"][kind] / figures["off"][kind])
        print(f"round {round_index + 1}: " + ", ".join(
            f"oneDNN {setting}: train {figures[setting]['train']:.0f}, inference "
            f"{figures[setting]['inference']:.0f} images/s" for setting in SETTINGS))
    for kind in ("inference", "train"):
        print(f"{kind} speed oneDNN on/off: {statistics.median(ratios[kind]):.2f}")


if __name__ == "__main__":
    main()
