"""Real photos: our whole pipeline against a plain Keras script, in one run.

    make bench-photos DATA_ROOT=../shared/data/cats-dogs-photos-dev

1. `make pipeline DATA_ROOT=...` with the defaults, timed end to end (ingestion to push);
   its eval accuracy is the Evaluator's (TFMA, over the whole test_set).
2. A plain single-process script as a user would write it: keras.applications ResNet50
   from scratch (no pretrained weights), `image_dataset_from_directory` at the same input
   size, Adam, trained until the same wall-time budget is spent, then evaluated on the
   same test_set.

Ends with `accuracy ours/plain: X.XX`.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from metadata.runs import latest_run_summary
from pipeline.config import PipelineConfig
from pipeline.source import REPO_ROOT

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


def run_pipeline(data_root: str, work: Path) -> tuple[float, float, bool]:
    """(eval accuracy, wall seconds, blessed) of `make pipeline` with the defaults."""
    environment = {**os.environ, "DATA_ROOT": data_root, "OUTPUT_DIR": str(work / "outputs"),
                   "LOCAL_HOME": str(work / "tfx_cli_home")}
    start = time.time()
    with open(work / "pipeline.log", "w") as log:
        subprocess.run(["make", "-C", str(REPO_ROOT), "pipeline"], env=environment,
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    seconds = time.time() - start
    run = latest_run_summary(PipelineConfig.from_env(environment).metadata_path)
    return run.metrics["binary_accuracy"], seconds, run.blessed


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
    parser.add_argument("--budget", type=float, default=None,
                        help="the plain script's wall-time budget in seconds "
                             "(default: what our pipeline took)")
    args = parser.parse_args()
    if not args.data_root:
        parser.error("pass --data-root or set DATA_ROOT to a folder of real photos "
                     "in the Kaggle layout.")
    config = PipelineConfig()
    with tempfile.TemporaryDirectory(prefix="real_photos_") as tmp:
        work = Path(tmp)
        ours, ours_s, blessed = run_pipeline(args.data_root, work)
        print(f"ours:  eval accuracy {ours:.3f} in {ours_s:.0f} s (make pipeline, defaults: "
              f"{config.image_size_px} px, ResNet-{config.resnet_depth} x"
              f"{config.width_multiplier}, {config.train_epochs} epochs), "
              f"{'blessed' if blessed else 'NOT blessed'}", flush=True)
        budget = args.budget or ours_s
        plain, epochs, plain_s = run_plain_script(args.data_root, config.image_size_px, budget,
                                                  work)
        print(f"plain: test accuracy {plain:.3f} in {plain_s:.0f} s (keras.applications "
              f"ResNet50 from scratch, {config.image_size_px} px, {epochs} epochs, "
              f"budget {budget:.0f} s)")
    print(f"accuracy ours/plain: {ours / plain:.2f}")


if __name__ == "__main__":
    main()
