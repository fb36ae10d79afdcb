"""Multi-worker training: images/s of 1 worker against 2, and what the all-reduce costs.

Each worker is a process of its own with its TF_CONFIG on loopback ports, as a TFJob's
pods are, running the Trainer's model (defaults: 64 px, ResNet-18 x0.25, 64 images per
replica) on synthetic images under the Trainer's strategy: `MirroredStrategy` for one
worker, `MultiWorkerMirroredStrategy` for two (global batch = 64 x workers). The
all-reduce is timed alone, on a tensor of the model's size, between the same workers.

    python -m benchmarks.multi_worker

On one machine the workers share its cores, so no speed-up is expected; the figure that
carries to a cluster is the all-reduce's share of a step. Ends with the line
`images/s 2 workers / 1 worker: X.XX`.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time



def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_worker(args: argparse.Namespace) -> None:
    """One worker: times training steps and the all-reduce; the chief prints JSON."""
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from models import distribution, optimization
    from pipeline.config import PipelineConfig

    config = dataclasses.replace(PipelineConfig(trainer_workers=args.workers).model_config(),
                                 batch_size_per_replica=args.batch_size_per_replica)
    strategy = distribution.distribution_strategy(config.distribution_strategy)
    global_batch = config.batch_size_per_replica * strategy.num_replicas_in_sync
    size = config.image_size_px
    images = np.random.default_rng(0).normal(size=(global_batch, size, size, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensors((images, np.arange(global_batch) % 2)).repeat()
    total_steps = args.warmup_steps + args.steps
    with strategy.scope():
        model = optimization.build_and_compile_model(config, total_steps)
    model.fit(dataset, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
    step_s = (time.perf_counter() - started) / args.steps

    # One all-reduce of a tensor as large as the gradients, as each step does.
    gradients = tf.ones([model.count_params()], tf.float32)

    @tf.function
    def all_reduce():
        return strategy.run(
            lambda: tf.distribute.get_replica_context().all_reduce("sum", gradients))

    all_reduce()
    started = time.perf_counter()
    for _ in range(args.steps):
        all_reduce()
    all_reduce_s = (time.perf_counter() - started) / args.steps
    if strategy.extended.should_checkpoint:
        print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                          "global_batch": global_batch, "step_s": step_s,
                          "images_per_s": global_batch / step_s,
                          "all_reduce_s": all_reduce_s,
                          "gradient_mb": model.count_params() * 4 / 2**20}))


def run_cluster(args: argparse.Namespace, workers: int) -> dict:
    """Starts `workers` worker processes; returns the chief's figures."""
    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        environment = dict(os.environ)
        if workers > 1:
            environment["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": [f"localhost:{port}" for port in ports]},
                "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "benchmarks.multi_worker", "--worker",
             "--workers", str(workers), "--steps", str(args.steps),
             "--warmup-steps", str(args.warmup_steps),
             "--batch-size-per-replica", str(args.batch_size_per_replica)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment))
    outputs = [process.communicate(timeout=1800)[0] for process in processes]
    for process in processes:
        if process.returncode != 0:
            raise RuntimeError(f"A worker of {workers} failed (exit {process.returncode}).")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--batch-size-per-replica", type=int, default=64)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return

    from benchmarks import common
    print(f"Machine: {common.machine()}")
    figures = {workers: run_cluster(args, workers) for workers in (1, 2)}
    for workers, figure in figures.items():
        print(f"{workers} worker(s): {figure['replicas']} replica(s), global batch "
              f"{figure['global_batch']}: {figure['images_per_s']:.1f} images/s "
              f"({figure['step_s'] * 1000:.0f} ms a step); all-reduce of "
              f"{figure['gradient_mb']:.1f} MB: {figure['all_reduce_s'] * 1000:.1f} ms "
              f"({figure['all_reduce_s'] / figure['step_s']:.1%} of a step)")
    print(f"images/s 2 workers / 1 worker: "
          f"{figures[2]['images_per_s'] / figures[1]['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
