"""What `import tfvq` costs on top of `import tensorflow, keras`, in wall-clock seconds.

Each import is timed in a fresh Python process (nothing cached in `sys.modules`; the OS file
cache warm after the first run, which is why the first round is thrown away), interleaved
round by round so that the load of other processes on shared cores falls on both alike, and
the medians are reported. The time is measured inside the child around the import statement
itself, so interpreter start-up is not counted.

    python benchmarks/import_time.py --runs=7
    python benchmarks/import_time.py --statement="import tensorflow, keras" \
        --statement="import tfvq" --statement="import tfvq, tfvq.plots, tfvq.tuning"

Keras 3 itself imports matplotlib.pyplot and scikit-learn when they are installed
(`keras.visualization`, `keras.wrappers`), so those are in the baseline; what tfvq adds is
TensorFlow Datasets and TensorFlow Probability (with tf-keras), while keras-tuner and tfvq's
own plotting load only on first use of `tfvq.tuning` / `tfvq.plots`.
"""

import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

# A sibling in benchmarks/, which Python puts first on the path when this script runs.
from report import cpu_model, publish

FLAGS = flags.FLAGS
flags.DEFINE_integer("runs", 7, "Timed fresh processes per statement (after one warm-up).")
# A multi-string flag (repeat --statement), since the statements themselves hold commas.
flags.DEFINE_multi_string("statement", ["import tensorflow, keras", "import tfvq"],
                          "Import statement to time (repeatable); the first is the baseline "
                          "the differences are taken from.")
flags.DEFINE_string("results", None, "Markdown file to append the table to.")

# The child prints the seconds its import took and nothing else on stdout.
_CHILD = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"


def time_import(statement):
    """Seconds that `statement` takes in a fresh interpreter (start-up excluded)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _CHILD.format(statement=statement)],
                          capture_output=True, text=True, env=env, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    statements = FLAGS.statement
    for statement in statements:  # warm-up: fills the OS file cache, not counted
        time_import(statement)
    samples = {statement: [] for statement in statements}
    for _ in range(FLAGS.runs):
        for statement in statements:
            samples[statement].append(time_import(statement))
    medians = {s: statistics.median(v) for s, v in samples.items()}
    baseline = medians[statements[0]]
    command = " ".join([f"python benchmarks/import_time.py --runs={FLAGS.runs}"]
                       + [f'--statement="{s}"' for s in statements])
    lines = [
        f"`{command}` — {time.strftime('%Y-%m-%d %H:%M')}, {cpu_model() or 'unknown CPU'}, "
        f"{os.cpu_count()} cores, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        "| statement | median s | min s | max s | minus baseline s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ] + [f"| `{s}` | {medians[s]:.2f} | {min(v):.2f} | {max(v):.2f} | "
         f"{medians[s] - baseline:+.2f} |" for s, v in samples.items()]
    text = "\n".join(lines)
    publish(text, FLAGS.results)


if __name__ == "__main__":
    app.run(main)
