"""VQ-VAE training step against this machine's measured peak, with and without XLA.

Two architectures: the Sonnet notebook's (128 hidden channels, 2 residual layers of 32
channels, batch 32) and the paper's CIFAR-10 one (section 4.1: "all having 256 hidden units",
read here as 256 hidden and 256 residual channels, batch 128); both K=512, D=64 and the EMA
quantizer. FLOPs per step are counted analytically (benchmarks/flops.py: 2 FLOPs per MAC,
3 x forward for the convolutions, 1 x for the quantizer's distance matmul) and cross-checked
with `tf.compat.v1.profiler` on the traced graphs. Steps are fed from memory (the input
pipeline is measured separately in input_pipeline.py), with `train_on_batch`.

Every round times the peak (2048^2 float32 matmul, benchmarks/peak.py) and then each train
step, in this process; the fraction of peak is taken per round and its median reported.
Two clocks: wall-clock time, and CPU time of this process (`time.process_time`, all threads).
On a machine shared with other jobs the wall-clock ratio is at the mercy of the scheduler
(the matmul and the step do not get the same share of the cores); the CPU-time ratio counts
only the time this process ran and is the steadier figure of the two.

    python benchmarks/train_step.py --rounds=5 --results=benchmarks/RESULTS.md

--profile (on by default) adds the CPU time of each part of the notebook model's step
(encoder, quantizer and decoder forward, forward+backward, the optimizer alone), each part in
its own `tf.function`.
"""

import statistics
import time

from absl import app, flags

# Siblings in benchmarks/, which Python puts first on the path when this script runs.
from flops import model_flops, train_step_flops
from peak import Peak
from report import publish

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 5, "Interleaved rounds (peak, then every variant).")
flags.DEFINE_float("seconds", 3.0, "Minimum timed seconds per variant per round.")
flags.DEFINE_list("configs", ["notebook", "paper"], "Architectures to time.")
flags.DEFINE_bool("profile", True, "Time the parts of the notebook model's step.")
flags.DEFINE_bool("cross_check", True, "Count FLOPs with tf.compat.v1.profiler too.")
flags.DEFINE_string("results", None, "Markdown file to append the tables to.")
flags.DEFINE_enum("dtype_policy", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy of the models (the peak stays a float32 matmul, so a "
                  "mixed policy's fraction counts its step at float32's FLOPs against "
                  "float32's rate).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow's inter-op thread pool (ops run side by "
                     "side); 0: TensorFlow's default (one per core).")
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow's intra-op thread pool (threads inside "
                     "one op); 0: TensorFlow's default (one per core).")

CONFIGS = {
    # name: (batch, hidden, residual channels)
    "notebook": (32, 128, 32),
    "paper": (128, 256, 256),
}


def build(config, jit_compile, num_embeddings=512):
    import keras
    import numpy as np

    import tfvq

    batch, hidden, residual = CONFIGS[config]
    keras.utils.set_random_seed(0)
    model = tfvq.VQVAE((32, 32, 3), num_embeddings=num_embeddings, embedding_dim=64,
                       hidden_channels=hidden, residual_channels=residual,
                       num_residual_layers=2, quantizer="ema", data_variance=0.06)
    model.compile(optimizer=keras.optimizers.Adam(2e-4), jit_compile=jit_compile)
    images = np.random.default_rng(0).random((batch, 32, 32, 3), dtype=np.float32)
    for _ in range(2):  # trace / compile and warm up
        model.train_on_batch(images)
    return model, images


def steps_per_second(model, images, min_seconds):
    """(steps per wall-clock second, steps per CPU-second of this process)."""
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        model.train_on_batch(images)  # returns numpy logs: waits for the step
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and steps >= 2:
            return steps / elapsed, steps / (time.process_time() - cpu_start)


def profiler_flops(model, images):
    """(forward, training step) FLOPs that tf.compat.v1.profiler counts on the traced graphs."""
    import tensorflow as tf

    spec = tf.TensorSpec(images.shape, tf.float32)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"

    def count(fn):
        graph = tf.function(fn).get_concrete_function(spec).graph
        return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops

    def train(x):
        with tf.GradientTape() as tape:
            loss, _ = model._loss_terms(x, training=False)
        return tape.gradient(loss, model.trainable_variables)

    return count(lambda x: model(x, training=False)), count(train)


def part_times(model, images, jit_compile, min_seconds):
    """Milliseconds of each part of one step, each in its own `tf.function`."""
    import tensorflow as tf

    x = tf.constant(images)
    z = model.encoder(x, training=True)
    zq = model.quantizer(z, training=False)
    opt = model.optimizer
    variables = model.trainable_variables

    def grads(x):
        with tf.GradientTape() as tape:
            loss, _ = model._loss_terms(x, training=True)
        return tape.gradient(loss, variables)

    fixed_grads = [tf.identity(g) for g in tf.function(grads)(x)]

    def apply(_):
        opt.apply(fixed_grads, variables)
        return opt.iterations

    parts = {
        "encoder forward": lambda x: model.encoder(x, training=True),
        "quantizer forward (training: EMA update)": lambda x: model.quantizer(
            z, training=True, return_info=True)["quantized"],
        "quantizer nearest-code search only": lambda x: model.quantizer.encode(z),
        "decoder forward": lambda x: model.decoder(zq, training=True),
        "forward + backward (no optimizer)": grads,
        "Adam update alone": apply,
    }
    times = {}
    for name, fn in parts.items():
        f = tf.function(fn, jit_compile=jit_compile)
        tf.nest.map_structure(lambda t: t.numpy(), f(x))
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            out = f(x)
            tf.nest.map_structure(lambda t: t.numpy(), out)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds and calls >= 3:
                break
        times[name] = 1000 * (time.process_time() - cpu_start) / calls
    return times


def main(argv):
    del argv
    import tensorflow as tf

    # Set before the first op: TensorFlow fixes its pools when the runtime starts.
    if FLAGS.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    if FLAGS.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
    import keras

    keras.config.set_dtype_policy(FLAGS.dtype_policy)
    peak = Peak(matmul_sizes=(2048,), convs=())
    variants = {}
    for config in FLAGS.configs:
        for jit in (False, True):
            variants[(config, jit)] = build(config, jit)
    samples = {key: [] for key in variants}
    peaks = []  # (wall, CPU-time) GFLOP/s of the matmul, per round
    for r in range(FLAGS.rounds):
        peaks.append(peak.best())
        for key, (model, images) in variants.items():
            rate, cpu_rate = steps_per_second(model, images, FLAGS.seconds)
            flops = train_step_flops(images.shape[0], hidden=CONFIGS[key[0]][1],
                                     residual=CONFIGS[key[0]][2]) / 1e9
            samples[key].append((rate, rate * flops / peaks[-1][0], cpu_rate,
                                 cpu_rate * flops / peaks[-1][1]))
        print(f"round {r}: peak {peaks[-1][0]:.1f} GFLOP/s wall, {peaks[-1][1]:.1f} per "
              "CPU-second; " + ", ".join(f"{k}: {v[-1]}" for k, v in samples.items()), flush=True)
    wall_peaks, cpu_peaks = [p[0] for p in peaks], [p[1] for p in peaks]

    command = (f"python benchmarks/train_step.py --rounds={FLAGS.rounds} "
               f"--seconds={FLAGS.seconds} --configs={','.join(FLAGS.configs)}")
    if FLAGS.dtype_policy != "float32":
        command += f" --dtype_policy={FLAGS.dtype_policy}"
    for name in ("inter_op_threads", "intra_op_threads"):
        if getattr(FLAGS, name):
            command += f" --{name}={getattr(FLAGS, name)}"
    lines = [
        f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, "
        f"2 CPU cores shared with other jobs; peak = 2048^2 float32 matmul, median "
        f"{statistics.median(wall_peaks):.1f} GFLOP/s wall (range {min(wall_peaks):.1f}-"
        f"{max(wall_peaks):.1f}), {statistics.median(cpu_peaks):.1f} GFLOP per CPU-second "
        f"(range {min(cpu_peaks):.1f}-{max(cpu_peaks):.1f})",
        "",
        "| model | batch | params | GFLOP/step (analytic) | XLA | steps/s wall (median) | "
        "fraction of peak, wall | steps per CPU-second | fraction of peak, CPU time |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for (config, jit), values in samples.items():
        model, images = variants[(config, jit)]
        batch, hidden, residual = CONFIGS[config]
        flops = train_step_flops(batch, hidden=hidden, residual=residual)
        med = [statistics.median(v[i] for v in values) for i in range(4)]
        lines.append(
            f"| {config} (h={hidden}, r={residual}) | {batch} | {model.count_params():,} | "
            f"{flops / 1e9:.2f} | {'yes' if jit else 'no'} | {med[0]:.3f} | {med[1]:.0%} | "
            f"{med[2]:.3f} | {med[3]:.0%} |"
        )

    if FLAGS.cross_check:
        lines += ["", "| model | forward GFLOP analytic | profiler | train step GFLOP analytic | "
                  "profiler (gradients, no optimizer) |", "| --- | ---: | ---: | ---: | ---: |"]
        for config in FLAGS.configs:
            model, images = variants[(config, False)]
            batch, hidden, residual = CONFIGS[config]
            fwd, train = profiler_flops(model, images)
            lines.append(
                f"| {config} | {model_flops(batch, hidden, residual)['total'] / 1e9:.3f} | "
                f"{fwd / 1e9:.3f} | {train_step_flops(batch, hidden=hidden, residual=residual) / 1e9:.3f}"
                f" | {train / 1e9:.3f} |")

    if FLAGS.profile:
        lines += ["", "Parts of the notebook model's step (batch 32): CPU milliseconds (all "
                  "threads of this process) per call, each part in its own tf.function; "
                  "analytic GFLOP in brackets:", "",
                  "| part | no XLA (CPU ms) | XLA (CPU ms) |", "| --- | ---: | ---: |"]
        timed = {}
        for jit in (False, True):
            model, images = variants[("notebook", jit)]
            timed[jit] = part_times(model, images, jit, FLAGS.seconds / 2)
        for jit in (False, True):
            model, images = variants[("notebook", jit)]
            rate = statistics.median(steps_per_second(model, images, FLAGS.seconds)[1]
                                     for _ in range(3))
            timed[jit]["whole train step (train_on_batch)"] = 1000 / rate
        f = model_flops(32)
        gf = {"encoder forward": f["encoder"], "decoder forward": f["decoder"],
              "quantizer forward (training: EMA update)": f["quantizer"],
              "quantizer nearest-code search only": f["quantizer"],
              "forward + backward (no optimizer)": train_step_flops(32)}
        for name in timed[False]:
            extra = f" [{gf[name] / 1e9:.2f}]" if name in gf else ""
            lines.append(f"| {name}{extra} | {timed[False][name]:.1f} | {timed[True][name]:.1f} |")

    text = "\n".join(lines)
    publish(text, FLAGS.results)


if __name__ == "__main__":
    app.run(main)
