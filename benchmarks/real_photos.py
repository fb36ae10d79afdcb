"""Real photos: our whole pipeline against a plain Keras script, in one run.

    make bench-photos DATA_ROOT=../shared/data/cats-dogs-photos-dev

1. `make pipeline DATA_ROOT=...` with the defaults, a first run in a fresh output folder,
   once per seed (SHUFFLE_SEED=0, 1, ...; the weights' initialisation differs each run
   too), timed end to end (ingestion to push) and the Trainer alone; its eval accuracy is
   the Evaluator's (TFMA, over the whole test_set). 500 eval photos give an accuracy near
   0.9 a standard error of ~0.014: one run is not a result.
2. A plain single-process script as a user would write it: keras.applications ResNet50
   from scratch (no pretrained weights), `image_dataset_from_directory` at the same input
   size, Adam, trained until the same wall-time budget (our runs' mean) is spent, then
   evaluated on the same test_set.

Ends with `accuracy ours/plain: X.XX` (our mean over the seeds).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.first_run import first_run
from pipeline.config import PipelineConfig

# Run in a fresh process, as the user's own script would be.
PLAIN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    data_root, size, budget_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    start = time.time()

    def load(split, shuffle):
        return tf.keras.utils.image_dataset_from_directory(
            os.path.join(data_root, split), image_size=(size, size), batch_size=32,
            shuffle=shuffle, seed=0).prefetch(tf.data.AUTOTUNE)

    train, test = load("training_set", True), load("test_set", False)
    inputs = tf.keras.Input((size, size, 3))
    x = tf.keras.layers.Rescaling(1 / 255)(inputs)
    x = tf.keras.layers.RandomFlip("horizontal")(x)
    outputs = tf.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                             classes=2)(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    class Budget(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # Stop before the next epoch would overrun the budget.
            elapsed = time.time() - start
            if elapsed * (epoch + 2) / (epoch + 1) > budget_s:
                self.model.stop_training = True

    history = model.fit(train, epochs=1000, callbacks=[Budget()], verbose=2)
    _, accuracy = model.evaluate(test, verbose=0)
    print(f"PLAIN {accuracy:.4f} {len(history.history['loss'])} {time.time() - start:.0f}")
""")


def run_plain_script(data_root: str, size: int, budget_s: float, work: Path
                     ) -> tuple[float, int, float]:
    """(test accuracy, epochs, wall seconds) of the plain Keras script."""
    script = work / "plain_keras.py"
    script.write_text(PLAIN_SCRIPT)
    with open(work / "plain.log", "w") as log:
        result = subprocess.run([sys.executable, str(script), data_root, str(size),
                                 str(budget_s)], stdout=subprocess.PIPE, stderr=log,
                                text=True, check=True)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("PLAIN ")]
    _, accuracy, epochs, seconds = line.split()
    return float(accuracy), int(epochs), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("DATA_ROOT"), required=False)
    parser.add_argument("--seeds", type=int, default=3, help="runs of our pipeline, each with "
                        "its own SHUFFLE_SEED (default: 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="the plain script's wall-time budget in seconds "
                             "(default: our runs' mean)")
    args = parser.parse_args()
    if not args.data_root:
        parser.error("pass --data-root or set DATA_ROOT to a folder of real photos "
                     "in the Kaggle layout.")
    config = PipelineConfig()
    print(f"ours: make pipeline, defaults: ResNet-{config.resnet_depth} "
          f"x{config.width_multiplier}, {config.train_epochs} epochs, the last "
          f"{config.full_size_epochs} at {config.image_size_px} px and the others at "
          f"{config.early_image_size_px} px", flush=True)
    runs = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="real_photos_") as work:
            run = first_run(Path(work), {"DATA_ROOT": args.data_root,
                                         "SHUFFLE_SEED": str(seed)})
        runs.append(run)
        print(f"  seed {seed}: eval accuracy {run['accuracy']:.3f} (TFMA), Trainer "
              f"{run['stages']['Trainer'][0]} s, whole run {run['wall_s']:.0f} s, "
              f"{'blessed' if run['blessed'] else 'NOT blessed'}", flush=True)
    accuracies = [run["accuracy"] for run in runs]
    ours = statistics.mean(accuracies)
    spread = statistics.stdev(accuracies) if len(runs) > 1 else 0.0
    trainer_s = statistics.mean(run["stages"]["Trainer"][0] for run in runs)
    wall_s = statistics.mean(run["wall_s"] for run in runs)
    print(f"ours:  eval accuracy {ours:.3f} mean (standard deviation {spread:.3f}, "
          f"{min(accuracies):.3f}-{max(accuracies):.3f}) over {len(runs)} seeds; Trainer "
          f"{trainer_s:.0f} s, whole run {wall_s:.0f} s (means)", flush=True)
    budget = args.budget or wall_s
    with tempfile.TemporaryDirectory(prefix="real_photos_plain_") as work:
        plain, epochs, plain_s = run_plain_script(args.data_root, config.image_size_px, budget,
                                                  Path(work))
    print(f"plain: test accuracy {plain:.3f} in {plain_s:.0f} s (keras.applications "
          f"ResNet50 from scratch, {config.image_size_px} px, {epochs} epochs, "
          f"budget {budget:.0f} s)")
    print(f"accuracy ours/plain: {ours / plain:.2f}")


if __name__ == "__main__":
    main()
