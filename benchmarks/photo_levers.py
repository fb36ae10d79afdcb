"""Training levers on real photos: the Trainer's own model, optimiser, augmentation and
progressive resizing, without the rest of the pipeline, over several seeds.

    python -m benchmarks.photo_levers --data-root ../shared/data/cats-dogs-photos-dev \\
        --seeds 3 "TRAIN_EPOCHS=150 EARLY_IMAGE_SCALE=1" ""

Each group of settings (an argument of NAME=value words; "": the defaults) trains once
per seed. The photos are decoded, resized and normalised in memory as Transform does
(models/preprocessing.py), once, and cached (`--cache`); training is the Trainer's model,
schedule and ProgressiveResizing (models/optimization.py) on its augmentation
(models/input_pipeline.py), for the settings' epochs, without evaluating during training.
Prints, per group, eval accuracy over the test_set (averaged with the mirror image, as
serving does, and the model's own), its mean and standard deviation over the seeds, and
the training's seconds. With `ONEDNN_MAX_CPU_ISA=AVX2` an AVX-512 machine's oneDNN
kernels (most of a training step) run as an AVX2 machine's.
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import models  # noqa: F401  (TensorFlow's environment, first)
import numpy as np
import tensorflow as tf

from benchmarks.common import machine
from models import input_pipeline, preprocessing
from models.optimization import (ProgressiveResizing, build_model, compile_model,
                                 learning_rate_schedule)
from pipeline.config import PipelineConfig


def decoded_split(data_root: str, split: str, class_names, size_px: int, cache: Path):
    """(float images [n, size, size, 3] in [0, 1], labels) of a split, as Transform decodes."""
    path = cache / f"{split}-{size_px}.npz"
    if not path.exists():
        files = [(str(file), label) for label, name in enumerate(class_names)
                 for file in sorted(Path(data_root, split, name).iterdir())]
        images = np.stack([preprocessing.decode_and_resize(tf.io.read_file(file), size_px)
                           .numpy() for file, _ in files])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=images, labels=np.array([label for _, label in files]))
    arrays = np.load(path)
    return arrays["images"], arrays["labels"]


def train_and_evaluate(config: PipelineConfig, data, seed: int) -> dict:
    """One training of the Trainer's model on the decoded photos; eval accuracy and time."""
    (train_images, train_labels), (eval_images, eval_labels) = data
    tf.keras.utils.set_random_seed(seed)
    model_config = config.model_config()
    batch = config.batch_size_per_replica
    steps_per_epoch = len(train_images) // batch
    epochs = config.train_epochs
    schedule = learning_rate_schedule(model_config, epochs * steps_per_epoch)
    model = compile_model(build_model(model_config), model_config, schedule)
    # No early stop: real photos train every epoch (their train accuracy stays below
    # plateau_min_train_accuracy), so no eval split is needed during training.
    resizing = ProgressiveResizing.for_run(model, model_config, epochs, plateau=None)
    training = (tf.data.Dataset.from_tensor_slices((train_images, train_labels))
                .shuffle(len(train_images), seed=seed).repeat().batch(batch, drop_remainder=True)
                .map(lambda images, labels: (input_pipeline.augment(images), labels),
                     num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    started = time.monotonic()
    history = model.fit(training, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=[resizing], verbose=0)
    seconds = time.monotonic() - started
    plain = model.predict(eval_images, batch_size=250, verbose=0)
    mirrored = model.predict(eval_images[:, :, ::-1], batch_size=250, verbose=0)
    return {"accuracy": float(np.mean(plain.argmax(1) == eval_labels)),
            "flip_accuracy": float(np.mean((plain + mirrored).argmax(1) == eval_labels)),
            "train_accuracy": history.history["accuracy"][-1], "seconds": seconds}


def settings_groups(arguments: list[str]) -> list[dict[str, str]]:
    """One dict of settings per argument of NAME=value words (none: the defaults)."""
    return [dict(word.partition("=")[::2] for word in argument.split())
            for argument in arguments or [""]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("DATA_ROOT"), required=False)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("outputs/photo_levers"))
    parser.add_argument("settings", nargs="*", help='groups of settings, e.g. "TRAIN_EPOCHS=150 '
                        'EARLY_IMAGE_SCALE=1" "" (the defaults)')
    args = parser.parse_args()
    if not args.data_root:
        parser.error("pass --data-root or set DATA_ROOT to a folder of real photos.")
    print(machine(), f"oneDNN ISA: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}",
          flush=True)
    for settings in settings_groups(args.settings):
        # Like `make pipeline`'s settings: the defaults overridden by upper-case names.
        config = PipelineConfig.from_env({**settings, "DATA_ROOT": args.data_root})
        decoded = [decoded_split(args.data_root, split, config.class_names,
                                 config.image_size_px, args.cache)
                   for split in ("training_set", "test_set")]
        # Transform's normalisation: per-channel statistics of the training split.
        pixels = decoded[0][0].reshape(-1, 3)
        mean, std = pixels.mean(axis=0), np.sqrt(pixels.var(axis=0) + 1e-6)
        data = [((images - mean) / std, labels) for images, labels in decoded]
        runs = [train_and_evaluate(config, data, seed) for seed in range(args.seeds)]
        flips = [run["flip_accuracy"] for run in runs]
        spread = statistics.stdev(flips) if len(runs) > 1 else 0.0
        print(f"{' '.join(f'{k}={v}' for k, v in settings.items()) or 'defaults'}: "
              f"eval accuracy with flip {statistics.mean(flips):.3f} (sd {spread:.3f}; "
              f"{', '.join(f'{f:.3f}' for f in flips)}), without "
              f"{statistics.mean(run['accuracy'] for run in runs):.3f}; train accuracy "
              f"{statistics.mean(run['train_accuracy'] for run in runs):.3f}; training "
              f"{statistics.mean(run['seconds'] for run in runs):.0f} s", flush=True)


if __name__ == "__main__":
    main()
