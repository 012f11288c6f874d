"""`PixelCNNPrior.sample` against the naive sampler that re-runs the whole network per position.

`PixelCNNPrior.sample` fills a map row by row: the vertical stack, which sees only the rows
above, runs once per row, and the horizontal stack runs on that one row per position. The naive
sampler, the textbook loop, runs the whole network on the whole map for each of the h*w
positions and reads the logits of one. Both run in `tf.function` and draw each position with the
same stateless seed, so on the same weights they draw the same codes (up to float ties).

    python benchmarks/prior_sampling.py --runs=5 --results=benchmarks/RESULTS.md
"""

import datetime
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    """Defined when the script runs, so that tests can import it beside other benchmarks."""
    flags.DEFINE_integer("num_maps", 64, "Code maps sampled per call.")
    flags.DEFINE_list("latent_shape", ["8", "8"], "Height and width of a code map.")
    flags.DEFINE_integer("num_embeddings", 512, "Codes K.")
    flags.DEFINE_integer("hidden_channels", 64, "Width of the prior.")
    flags.DEFINE_integer("num_layers", 8, "Gated blocks of the prior.")
    flags.DEFINE_integer("runs", 5, "Timed calls of each sampler; the table reports the median.")
    flags.DEFINE_integer("threads", 2, "TensorFlow intra- and inter-op threads.")
    flags.DEFINE_string("results", None, "Markdown file whose '## Prior sampling, <CPU>, <AVX "
                        "kind> (issue 17)' section to write.")


def naive_sampler(prior):
    """`(n, seed, temperature) -> codes`: the whole network on the whole map per position."""
    import tensorflow as tf

    height, width = prior.latent_shape

    @tf.function
    def sample(codes, seed, temperature):
        def fill(position, codes):
            logits = prior(codes)[:, position // width, position % width]
            draw = tf.random.stateless_categorical(
                logits / temperature, 1, seed=tf.stack([seed, position]), dtype=tf.int32
            )
            where = tf.reshape(tf.one_hot(position, height * width, dtype=tf.int32),
                               (1, height, width))
            return codes + where * draw[:, :, None]

        return tf.while_loop(lambda p, _: p < height * width,
                             lambda p, c: (p + 1, fill(p, c)), (0, codes))[1]

    def run(n, seed, temperature=1.0):
        codes = tf.zeros((n, height, width), tf.int32)
        return sample(codes, tf.constant(seed, tf.int32), tf.constant(temperature, tf.float32))

    return run


def median_seconds(call, runs):
    call()  # traces and builds
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(num_maps, latent_shape, num_embeddings, hidden_channels, num_layers, runs):
    import numpy as np

    import tfvq

    prior = tfvq.PixelCNNPrior(num_embeddings, latent_shape, hidden_channels=hidden_channels,
                               num_layers=num_layers)
    prior(np.zeros((1,) + latent_shape, "int32"))
    naive = naive_sampler(prior)
    fast_s = median_seconds(lambda: prior.sample(num_maps, seed=7).numpy(), runs)
    naive_s = median_seconds(lambda: naive(num_maps, 7).numpy(), runs)
    same = np.mean(prior.sample(num_maps, seed=7).numpy() == naive(num_maps, 7).numpy())
    return {"fast_s": fast_s, "naive_s": naive_s, "ratio": naive_s / fast_s, "same": float(same)}


def format_result(result, num_maps, latent_shape):
    return "\n".join([
        "| sampler | time for the maps (s) | per map (ms) | ratio (naive / this) |",
        "| --- | ---: | ---: | ---: |",
        f"| `PixelCNNPrior.sample` | {result['fast_s']:.3f} | "
        f"{1e3 * result['fast_s'] / num_maps:.1f} | {result['ratio']:.1f} |",
        f"| naive (whole network per position) | {result['naive_s']:.3f} | "
        f"{1e3 * result['naive_s'] / num_maps:.1f} | 1.0 |",
        "",
        f"{num_maps} maps of {latent_shape[0]}x{latent_shape[1]} codes per call; the same seeds "
        f"give the same code at {100 * result['same']:.2f}% of the positions.",
    ])


def main(argv):
    del argv
    import tensorflow as tf

    import report  # benchmarks/ is sys.path[0] when the script runs

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    latent_shape = tuple(int(s) for s in FLAGS.latent_shape)
    result = run(FLAGS.num_maps, latent_shape, FLAGS.num_embeddings, FLAGS.hidden_channels,
                 FLAGS.num_layers, FLAGS.runs)
    command = "python " + " ".join(["benchmarks/prior_sampling.py"] + sys.argv[1:])
    section = report.machine_heading("Prior sampling", "issue 17")
    text = "\n".join([
        section, "",
        f"`{command}` on {datetime.date.today().isoformat()}, {report.cpu_model()}, "
        f"{FLAGS.threads} threads; prior K={FLAGS.num_embeddings}, {FLAGS.num_layers} gated "
        f"blocks of {FLAGS.hidden_channels} channels, random weights (the time does not depend "
        f"on them). Median of {FLAGS.runs} calls after one untimed call.", "",
        format_result(result, FLAGS.num_maps, latent_shape), "",
    ])
    report.publish(text, FLAGS.results, section)


if __name__ == "__main__":
    define_flags()
    app.run(main)
