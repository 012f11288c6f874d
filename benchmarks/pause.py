"""One quantizer step timed after an idle pause: how much of a lone step is waking the cores.

`benchmarks/quantizer.py` pauses after each row so that one library's spinning threads do not
slow the next row. A step timed alone right after such a pause can measure the machine's wake-up
as much as the step, and unevenly: on a 2-vCPU AMD EPYC VM (cpuidle haltpoll) one run of this
script had the plain step at K = 2048 slower after a 50 ms pause and XLA's not, a probe of the
same step earlier that day the other way round. This script times `VectorQuantizerEMA`'s
training step (fwd+bwd and the EMA update, `return_info=True`, inputs (128, 8, 8, 64)) with and
without `jit_compile`, each call after a pause of each length, and prints the medians;
quantizer.py's lead-in step is the answer it led to.

    python benchmarks/pause.py --codebook_sizes=2048,8192 --pauses_ms=0,2,10,50
"""

import statistics
import time

from absl import app, flags

import report  # benchmarks/ is sys.path[0] when the script runs

FLAGS = flags.FLAGS
flags.DEFINE_list("codebook_sizes", ["2048"], "Codebook sizes K to time.")
flags.DEFINE_list("pauses_ms", ["0", "2", "10", "50"], "Idle pauses before each timed step.")
flags.DEFINE_integer("runs", 12, "Timed steps per (K, pause, compiler); the median is printed.")
flags.DEFINE_integer("threads", 2, "TensorFlow's intra-op threads.")


def ema_step(num_embeddings, jit_compile, seed=0):
    """A zero-argument callable running one training step of a built `VectorQuantizerEMA`."""
    import numpy as np
    import tensorflow as tf

    from tfvq import layers

    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(128, 8, 8, 64)).astype(np.float32))
    layer = layers.VectorQuantizerEMA(num_embeddings, 64, commitment_cost=0.25, decay=0.99)
    layer.build(x.shape)
    layer.set_codebook(rng.uniform(-0.2, 0.2, size=(num_embeddings, 64)).astype(np.float32))

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True, return_info=True)["quantized"]
            loss = tf.reduce_sum(outputs) + tf.add_n(layer.losses)
        return tape.gradient(loss, inputs)

    return lambda: step(x)


def time_after_pauses(step, pauses, runs, warmup=3):
    """Median seconds of `step` called right after each pause (seconds): `{pause: seconds}`."""
    for _ in range(warmup):
        step()
    medians = {}
    for pause in pauses:
        times = []
        for _ in range(runs):
            time.sleep(pause)
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        medians[pause] = statistics.median(times)
    return medians


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    pauses = [float(p) / 1e3 for p in FLAGS.pauses_ms]
    print(f"{report.cpu_model()}, {FLAGS.threads} threads; ms per step after each pause")
    print("| K | compiler | " + " | ".join(f"after {p} ms" for p in FLAGS.pauses_ms) + " |")
    print("| ---: | --- |" + " ---: |" * len(pauses))
    for num_embeddings in (int(k) for k in FLAGS.codebook_sizes):
        for jit_compile in (False, True):
            medians = time_after_pauses(ema_step(num_embeddings, jit_compile), pauses,
                                        FLAGS.runs)
            name = "XLA" if jit_compile else "tf.function"
            cells = " | ".join(f"{1e3 * medians[p]:.1f}" for p in pauses)
            print(f"| {num_embeddings} | {name} | {cells} |")


if __name__ == "__main__":
    app.run(main)
