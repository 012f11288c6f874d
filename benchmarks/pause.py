"""One quantizer step timed after an idle pause: how much of a lone step is waking the cores.

`benchmarks/quantizer.py` pauses after each row so that one library's spinning threads do not
slow the next row. A step timed alone right after such a pause can measure the machine's wake-up
as much as the step, and unevenly: on a 2-vCPU AMD EPYC VM (cpuidle haltpoll) one run of this
script had the plain step at K = 2048 slower after a 50 ms pause and XLA's not, a probe of the
same step earlier that day the other way round. This script times quantizer.py's tfvq step of
`--quantizers` (its inputs, codebook and flags: `--shape`, `--return_info`, `--runs`,
`--threads`) with and without `jit_compile`, each call after a pause of each length, and prints
the medians; quantizer.py's lead-in step is the answer it led to.

    python benchmarks/pause.py --quantizers=ema --codebook_sizes=512,2048,8192 --return_info
"""

import statistics
import time

from absl import app, flags

import quantizer  # benchmarks/ is sys.path[0] when the script runs; defines the shared flags
import report

FLAGS = flags.FLAGS
flags.DEFINE_list("pauses_ms", ["0", "2", "10", "50"], "Idle pauses before each timed step.")


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
    quantizer.configure_threads(FLAGS.threads, "tensorflow")
    shape = tuple(int(s) for s in FLAGS.shape)
    pauses = [float(p) / 1e3 for p in FLAGS.pauses_ms]
    print(f"{report.cpu_model()}, {FLAGS.threads} threads; ms per step after each pause")
    print("| quantizer | K | compiler | "
          + " | ".join(f"after {p} ms" for p in FLAGS.pauses_ms) + " |")
    print("| --- | ---: | --- |" + " ---: |" * len(pauses))
    for name in FLAGS.quantizers:
        for num_embeddings in (int(k) for k in FLAGS.codebook_sizes):
            x, codebook = quantizer.make_data(shape, num_embeddings)
            for jit_compile in (False, True):
                step = quantizer.tfvq_step(name, x, codebook, jit_compile=jit_compile)
                medians = time_after_pauses(step, pauses, FLAGS.runs)
                compiler = "XLA" if jit_compile else "tf.function"
                cells = " | ".join(f"{1e3 * medians[p]:.1f}" for p in pauses)
                print(f"| {name} | {num_embeddings} | {compiler} | {cells} |")


if __name__ == "__main__":
    app.run(main)
