"""Step time against batch size and codebook size K, quantizer alone and whole VQ-VAE; memory.

Quantizer alone: `VectorQuantizerEMA` (D=64, decay 0.99, beta 0.25), one training step as in
benchmarks/quantizer.py (forward with the EMA update, gradient w.r.t. the inputs) on
(batch, 8, 8, 64) inputs. Whole model: the Sonnet-notebook VQ-VAE (128 hidden, 2 x 32
residual channels, D=64, EMA), `train_on_batch` on an in-memory batch.

Every round times every variant once (at least --seconds each) and the 2048^2 matmul peak;
times are CPU time of this process (`time.process_time`, all threads), which the load of
other processes on the shared cores disturbs far less than wall-clock time; each time is also
divided by its baseline's time in the same round (K=512 or batch 32), and the tables give
medians over rounds.

Memory: in a fresh process per row, after one untimed step, `malloc_trim` and a reset of the
peak-RSS counter; the figure is the peak RSS of 3 further steps over the RSS before them.

    python benchmarks/scaling.py --rounds=3 --results=benchmarks/RESULTS.md
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

# Siblings in benchmarks/, which Python puts first on the path when this script runs.
from flops import train_step_flops
from memory import peak_memory_mib, status_kib
from peak import Peak
from report import publish

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
flags.DEFINE_float("seconds", 1.0, "Minimum timed seconds per variant per round.")
flags.DEFINE_list("ks", ["512", "1024", "2048", "4096", "8192", "16384"], "Codebook sizes.")
flags.DEFINE_list("batches", ["8", "16", "32", "64", "128"], "Batch sizes (images).")
flags.DEFINE_list("memory_ks", ["512", "2048", "8192", "16384"], "K for the memory rows.")
flags.DEFINE_string("results", None, "Markdown file to append the tables to.")
flags.DEFINE_string("mem_row", None, "Internal: 'quantizer|model,K' measured in this process.")


def quantizer_step(num_embeddings, batch, jit_compile=False):
    import numpy as np
    import tensorflow as tf

    from tfvq.layers import VectorQuantizerEMA

    layer = VectorQuantizerEMA(num_embeddings, 64, commitment_cost=0.25, decay=0.99, seed=0)
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, 8, 8, 64)).astype("float32"))
    layer.build(x.shape)

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=True)) + tf.add_n(layer.losses)
        return tape.gradient(loss, inputs)

    return lambda: step(x).numpy()


def model_step(num_embeddings, batch, jit_compile=False):
    import keras
    import numpy as np

    import tfvq

    keras.utils.set_random_seed(0)
    model = tfvq.VQVAE((32, 32, 3), num_embeddings=num_embeddings, embedding_dim=64,
                       hidden_channels=128, residual_channels=32, num_residual_layers=2)
    model.compile(optimizer=keras.optimizers.Adam(2e-4), jit_compile=jit_compile)
    images = np.random.default_rng(0).random((batch, 32, 32, 3), dtype=np.float32)
    return lambda: model.train_on_batch(images)


def seconds_per_call(step, min_seconds):
    """CPU seconds of this process (all threads) per call; wall time only decides when to stop."""
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 2:
            return (time.process_time() - cpu_start) / calls


def memory_row(kind, k):
    command = [sys.executable, os.path.abspath(__file__), f"--mem_row={kind},{k}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.mem_row:
        kind, k = FLAGS.mem_row.split(",")
        make = quantizer_step if kind == "quantizer" else model_step
        step = make(int(k), 32)
        print(json.dumps({"peak_mib": peak_memory_mib(step), "rss_mib": status_kib("VmRSS") / 1024}))
        return
    import tensorflow as tf

    ks = [int(k) for k in FLAGS.ks]
    batches = [int(b) for b in FLAGS.batches]
    variants = {}  # (table, kind, K, batch, xla) -> step
    for xla in (False, True):
        for k in ks:
            variants[("K", "quantizer", k, 32, xla)] = quantizer_step(k, 32, xla)
            variants[("K", "model", k, 32, xla)] = model_step(k, 32, xla)
        for b in batches:
            variants[("batch", "quantizer", 512, b, xla)] = variants.get(
                ("K", "quantizer", 512, b, xla)) or quantizer_step(512, b, xla)
            variants[("batch", "model", 512, b, xla)] = variants.get(
                ("K", "model", 512, b, xla)) or model_step(512, b, xla)
    for step in variants.values():  # trace / compile and warm up
        step()
        step()
    peak = Peak(matmul_sizes=(2048,), convs=())
    times = {key: [] for key in variants}
    ratios = {key: [] for key in variants}
    peaks = []
    for r in range(FLAGS.rounds):
        peaks.append(peak.best()[1])  # GFLOP per CPU-second
        for key, step in variants.items():
            times[key].append(seconds_per_call(step, FLAGS.seconds))
        for key in variants:
            table, kind, k, b, xla = key
            base = times[(table, kind, 512, 32, xla)][-1]
            ratios[key].append(times[key][-1] / base)
        print(f"round {r} done, peak {peaks[-1]:.1f} GFLOP/s", flush=True)

    def med(key):
        return 1000 * statistics.median(times[key]), statistics.median(ratios[key])

    command = (f"python benchmarks/scaling.py --rounds={FLAGS.rounds} --seconds={FLAGS.seconds} "
               f"--ks={','.join(FLAGS.ks)} --batches={','.join(FLAGS.batches)} "
               f"--memory_ks={','.join(FLAGS.memory_ks)}")
    lines = [
        f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}, TensorFlow {tf.__version__}, 2 CPU "
        f"cores shared with other jobs; CPU milliseconds (all threads) per step; 2048^2 "
        f"matmul peak during the run: median {statistics.median(peaks):.1f} GFLOP per "
        f"CPU-second (range {min(peaks):.1f}-{max(peaks):.1f})",
        "",
        "Against K (batch 32 images = 2,048 vectors of D=64); ratio = time / time at K=512, "
        "same round, median of rounds:",
        "",
        "| K | quantizer CPU ms | ratio | quantizer XLA CPU ms | ratio | model step CPU ms | "
        "ratio | model XLA CPU ms | ratio | model GFLOP/step |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in ks:
        cells = []
        for kind in ("quantizer", "model"):
            for xla in (False, True):
                ms, ratio = med(("K", kind, k, 32, xla))
                cells += [f"{ms:.1f}", f"{ratio:.2f}"]
        lines.append(f"| {k} | " + " | ".join(cells)
                     + f" | {train_step_flops(32, num_embeddings=k) / 1e9:.2f} |")
    lines += [
        "",
        "Against batch size (K=512); ratio = time / time at batch 32; per-image ratio = ratio "
        "x 32 / batch:",
        "",
        "| batch | quantizer CPU ms | per-image ratio | quantizer XLA CPU ms | per-image ratio | "
        "model step CPU ms | per-image ratio | model XLA CPU ms | per-image ratio | model "
        "fraction of peak, CPU time (no XLA / XLA) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b in batches:
        cells = []
        for kind in ("quantizer", "model"):
            for xla in (False, True):
                ms, ratio = med(("batch", kind, 512, b, xla))
                cells += [f"{ms:.1f}", f"{ratio * 32 / b:.2f}"]
        fractions = []
        for xla in (False, True):
            # Fraction of the same round's peak, median over rounds.
            values = [train_step_flops(b) / t / 1e9 / p
                      for t, p in zip(times[("batch", "model", 512, b, xla)], peaks)]
            fractions.append(f"{statistics.median(values):.0%}")
        lines.append(f"| {b} | " + " | ".join(cells) + f" | {' / '.join(fractions)} |")
    if FLAGS.memory_ks:
        lines += ["", "Memory against K (batch 32, no XLA; fresh process per row): peak RSS of "
                  "3 steady-state steps over the RSS before them (MiB), and the RSS held "
                  "between steps:", "",
                  "| K | quantizer step peak | quantizer process RSS | model step peak | "
                  "model process RSS | (N, K) float32 matrix |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k in FLAGS.memory_ks:
            q, m = memory_row("quantizer", k), memory_row("model", k)
            lines.append(f"| {k} | {q['peak_mib']:.0f} | {q['rss_mib']:.0f} | "
                         f"{m['peak_mib']:.0f} | {m['rss_mib']:.0f} | "
                         f"{2048 * int(k) * 4 / 2**20:.0f} |")
    text = "\n".join(lines)
    publish(text, FLAGS.results)


if __name__ == "__main__":
    app.run(main)
