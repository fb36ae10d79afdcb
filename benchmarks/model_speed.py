"""Model speed: our ResNet against keras.applications' ResNet50, all else identical.

Both models get the same input size, batch, optimizer (the Trainer's compile_model: AdamW
with warm-up and cosine decay), precision, XLA setting and distribution strategy, in one
process. Each is warmed up (tracing, XLA compilation) and then timed over the same steps,
in alternating rounds; the ratio is the median of the rounds' ratios, so that a noisy
spell on a shared machine does not decide it.

    python -m benchmarks.model_speed                      # CPU-sized defaults, synthetic data
    python -m benchmarks.model_speed --image-size-px 224 --batch-size-per-replica 128 \\
        --mixed-precision on --jit-compile on             # what benchmarks/gpu.sh runs
    python -m benchmarks.model_speed --data transformed   # the pipeline's Transform output

Ends with the line `train ratio ours/reference: X.XX`.
"""
import argparse
import dataclasses


import numpy as np
import tensorflow as tf

from benchmarks import common
from models import distribution, optimization
from models.model_config import GPU_SPEEDUP_SETTINGS, ModelConfig
from pipeline.config import PipelineConfig


def model_config(args: argparse.Namespace) -> ModelConfig:
    return dataclasses.replace(
        PipelineConfig().model_config(), resnet_depth=args.depth, width_multiplier=1.0,
        image_size_px=args.image_size_px, mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile)


def build_reference(config: ModelConfig, train_steps: int) -> tf.keras.Model:
    """keras.applications.ResNet50 with our head, policy and optimizer."""
    tf.keras.mixed_precision.set_global_policy(
        "mixed_float16" if optimization.switched_on(config.mixed_precision) else "float32")
    size = config.image_size_px
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                           classes=len(config.class_names))
    return optimization.compile_model(model, config, optimization.learning_rate_schedule(config, train_steps))


def synthetic_input(global_batch_size: int, image_size_px: int) -> tf.data.Dataset:
    images = np.random.default_rng(0).normal(
        size=(global_batch_size, image_size_px, image_size_px, 3)).astype(np.float32)
    labels = np.arange(global_batch_size) % 2
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--image-size-px", type=int, default=128)
    parser.add_argument("--batch-size-per-replica", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mixed-precision", default="auto", choices=GPU_SPEEDUP_SETTINGS)
    parser.add_argument("--jit-compile", default="auto", choices=GPU_SPEEDUP_SETTINGS)
    parser.add_argument("--data", default="synthetic", choices=["synthetic", "transformed"],
                        help="transformed: the pipeline's newest Transform output (run "
                             "`make pipeline` with the same IMAGE_SIZE_PX first)")
    args = parser.parse_args()

    config = model_config(args)
    strategy = distribution.distribution_strategy(config.distribution_strategy)
    global_batch = args.batch_size_per_replica * strategy.num_replicas_in_sync
    if args.data == "synthetic":
        dataset = synthetic_input(global_batch, args.image_size_px)
    else:
        dataset = common.trainer_input(
            *common.latest_transform_outputs(PipelineConfig.from_env()), global_batch)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    print(f"Machine: {common.machine()}")
    print(f"ResNet-{args.depth}, {args.image_size_px}x{args.image_size_px}, global batch "
          f"{global_batch} on {strategy.num_replicas_in_sync} replica(s), {args.data} data, "
          f"mixed precision {optimization.switched_on(args.mixed_precision)}, "
          f"XLA {optimization.switched_on(args.jit_compile)}")

    total_steps = (args.rounds + 1) * args.steps * 2
    models = {}
    with strategy.scope():
        models["ours"] = optimization.build_and_compile_model(config, total_steps)
        models["reference"] = build_reference(config, total_steps)
    for name, model in models.items():
        print(f"{name}: {model.count_params():,} parameters")
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up
        model.predict(dataset, steps=2, verbose=0)

    # Per round, each model is timed right after the other (in alternating order), and the
    # ratio is taken within the round: a slower spell of a shared machine then slows both.
    train, infer = {name: [] for name in models}, {name: [] for name in models}
    images = args.steps * global_batch
    for round_index in range(args.rounds):
        order = list(models) if round_index % 2 == 0 else list(reversed(models))
        for name in order:
            model = models[name]
            train[name].append(common.images_per_second(
                lambda: model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0),
                images, repeats=1))
            infer[name].append(common.images_per_second(
                lambda: model.predict(dataset, steps=args.steps, verbose=0), images, repeats=1))
    for name in models:
        print(f"{name:>9}: train {np.median(train[name]):8.1f} images/s, inference "
              f"{np.median(infer[name]):8.1f} images/s (medians of {args.rounds} rounds)")
    for label, figures in (("inference", infer), ("train", train)):
        per_round = np.divide(figures["ours"], figures["reference"])
        print(f"{label} ratios per round: {' '.join(f'{r:.2f}' for r in per_round)}")
        print(f"{label} ratio ours/reference: {np.median(per_round):.2f}")


if __name__ == "__main__":
    main()
