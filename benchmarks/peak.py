"""This machine's measured float32 peak in TensorFlow: a large matmul and a large conv, GFLOP/s.

Two figures per kernel: GFLOP per wall-clock second, and GFLOP per CPU-second of this process
(`time.process_time`, all threads). On a machine shared with other jobs the wall-clock rate
falls with the load; the CPU-time rate counts only the time this process ran, so it is the
steadier estimate of what the cores can do (2 cores: wall peak <= 2 x CPU-time peak).

The peak is the denominator of every "fraction of peak" figure in benchmarks/: train_step.py
and scaling.py import `Peak` and re-measure it between their own timings, in the same process,
so that the load other processes put on the shared cores cancels in the ratio.

    python benchmarks/peak.py --rounds=7 --results=benchmarks/RESULTS.md

FLOPs: 2 per multiply-accumulate. Matmul (n, n) x (n, n): 2 n^3. Conv: 2 * B * H * W * kh * kw
* Cin * Cout (same padding, stride 1).
"""

import os
import statistics
import time

from absl import app, flags

# A sibling in benchmarks/, which Python puts first on the path when this script runs.
from report import publish

FLAGS = flags.FLAGS


def _define_flags():
    # Only when run as a script: train_step.py and scaling.py import `Peak` with flags of their own.
    flags.DEFINE_integer("rounds", 7, "Interleaved rounds (one timing of each kernel per round).")
    flags.DEFINE_list("matmul_sizes", ["1024", "2048", "4096"], "Square matmul sizes.")
    flags.DEFINE_string("results", None, "Markdown file to append the table to.")


# (name, batch, height, width, kernel, cin, cout): a big conv, and the notebook VQ-VAE's
# 3x3 conv on its 8x8 latent map at batch 32 (what the model actually runs).
CONVS = (
    ("conv 3x3 256->256, 32x32, batch 32", 32, 32, 32, 3, 256, 256),
    ("conv 3x3 128->128, 8x8, batch 32 (model-sized)", 32, 8, 8, 3, 128, 128),
)


class Peak:
    """Timed float32 kernels in one `tf.function` each (and under XLA with `jit_compile`).

    `time(name)` runs one kernel enough times to take ~`min_seconds` and returns GFLOP/s.

    Example:
    >>> peak = Peak(matmul_sizes=(2048,))
    >>> peak.gflops("matmul 2048")  # doctest: +SKIP
    58.3
    """

    def __init__(self, matmul_sizes=(2048,), convs=CONVS, jit_compile=False, min_seconds=0.5):
        import tensorflow as tf

        self.min_seconds = min_seconds
        self.kernels = {}  # name -> (function, flops per call)
        rng = tf.random.Generator.from_seed(0)
        for n in matmul_sizes:
            n = int(n)
            a, b = rng.normal((n, n)), rng.normal((n, n))
            f = tf.function(lambda a=a, b=b: tf.matmul(a, b), jit_compile=jit_compile)
            self.kernels[f"matmul {n}"] = (f, 2 * n**3)
        for name, batch, h, w, k, cin, cout in convs:
            x, kernel = rng.normal((batch, h, w, cin)), rng.normal((k, k, cin, cout))
            f = tf.function(
                lambda x=x, kernel=kernel: tf.nn.conv2d(x, kernel, 1, "SAME"),
                jit_compile=jit_compile,
            )
            self.kernels[name] = (f, 2 * batch * h * w * k * k * cin * cout)
        for f, _ in self.kernels.values():  # trace, compile and warm up outside the timing
            f().numpy()
            f().numpy()

    def measure(self, name):
        """(GFLOP per wall-clock second, GFLOP per CPU second of this process)."""
        f, flops = self.kernels[name]
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            f().numpy()  # .numpy() waits for the result
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= self.min_seconds and calls >= 2:
                cpu = time.process_time() - cpu_start
                return calls * flops / elapsed / 1e9, calls * flops / cpu / 1e9

    def gflops(self, name):
        return self.measure(name)[0]

    def best(self):
        """The highest (wall, CPU-time) GFLOP/s of all kernels in this round (the matmuls)."""
        values = [self.measure(name) for name in self.kernels]
        return max(v[0] for v in values), max(v[1] for v in values)


def main(argv):
    del argv
    import tensorflow as tf

    peaks = {False: Peak(FLAGS.matmul_sizes), True: Peak(FLAGS.matmul_sizes, jit_compile=True)}
    samples = {(xla, name): [] for xla in peaks for name in peaks[xla].kernels}
    for _ in range(FLAGS.rounds):
        for (xla, name), values in samples.items():
            values.append(peaks[xla].measure(name))
    rows = [(name, xla, statistics.median(w for w, _ in v), max(w for w, _ in v),
             statistics.median(c for _, c in v), max(c for _, c in v))
            for (xla, name), v in samples.items()]
    lines = [
        f"`python benchmarks/peak.py --rounds={FLAGS.rounds} "
        f"--matmul_sizes={','.join(FLAGS.matmul_sizes)}` — {time.strftime('%Y-%m-%d %H:%M')}, "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} cores (shared), intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}",
        "",
        "| kernel | XLA | median GFLOP/s (wall) | best (wall) | median GFLOP per CPU-second |"
        " best per CPU-second |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ] + [f"| {n} | {'yes' if x else 'no'} | {m:.1f} | {b:.1f} | {cm:.1f} | {cb:.1f} |"
         for n, x, m, b, cm, cb in rows]
    text = "\n".join(lines)
    publish(text, FLAGS.results)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
