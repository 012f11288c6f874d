"""The codebook search in row blocks against one block: `VectorQuantizerEMA.encode` timed both ways.

    python benchmarks/search_rows.py --num_vectors=2048,8192 --runs=25

Without XLA, TensorFlow's `encode` searches a codebook of up to 512 codes 1024 vectors per
matmul (`tfvq.layers.quantizers._ROW_CHUNK`), so that the argmin reads each (1024, K) block
of scores while it is still in cache. This times that against the layer's one (N, K) block
(its `_row_chunked` switch turned off) and, with `--jit_compile`, against one block under XLA,
where the layer keeps one block by itself.
Rounds interleave the variants, with a pause after each call; the medians are printed.
"""

import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("num_vectors", ["2048", "8192"], "Vectors searched per call.")
flags.DEFINE_integer("num_embeddings", 512, "Codebook size K (one search block: <= 512).")
flags.DEFINE_integer("runs", 25, "Timed rounds.")
flags.DEFINE_bool("jit_compile", False, "Also time one block under XLA.")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from report import cpu_model  # benchmarks/, on sys.path when run
    from tfvq.layers import VectorQuantizerEMA
    from tfvq.layers import quantizers

    layer = VectorQuantizerEMA(FLAGS.num_embeddings, 64, seed=0)
    rng = np.random.default_rng(0)
    print(f"{cpu_model()}, K={FLAGS.num_embeddings}, D=64, median ms per encode call")
    for n in (int(v) for v in FLAGS.num_vectors):
        x = tf.constant(rng.normal(size=(n, 64)).astype("float32"))
        variants = {}
        for name, blocks, jit in (("row blocks", True, False), ("one block", False, False),
                                  ("one block, XLA", False, True)):
            if jit and not FLAGS.jit_compile:
                continue
            # The layer's own switch, read while tracing (under XLA it says one block itself).
            saved = quantizers._row_chunked
            if not blocks:
                quantizers._row_chunked = lambda: False
            try:
                fn = tf.function(layer.encode, jit_compile=jit)
                fn(x).numpy()
            finally:
                quantizers._row_chunked = saved
            variants[name] = fn
        times = {name: [] for name in variants}
        for _ in range(FLAGS.runs):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn(x).numpy()
                times[name].append(time.perf_counter() - start)
                time.sleep(0.02)
        print(f"N={n}: " + ", ".join(f"{name} {1e3 * statistics.median(t):.2f}"
                                     for name, t in times.items()))


if __name__ == "__main__":
    app.run(main)
