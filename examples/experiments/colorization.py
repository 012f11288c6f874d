"""Seed 004's colorization: `tfvq.Colorizer` against the gray baseline, in one table.

    python examples/experiments/colorization.py --output_dir=runs/experiments/colorization

Runs `examples/colorize.py` (Zhang et al. 2016: ab from L in CIE L*a*b*) once per --heads
("classification": quantized ab bins with class rebalancing and annealed-mean decoding, the
paper's method; "regression": L2 on ab), each into its own sub-folder, and collects its
metrics.json: PSNR, mean ab error and the raw-accuracy AuC (ab within 0-150 thresholds) on the
test images, for each model and for the gray baseline (predict ab = 0). Writes results.json and
copies each run's colorized.png as colorized_<head>.png.

Larger settings: --epochs=30 --steps_per_epoch=0 (one pass over the data per epoch).
"""

import json
import os
import shutil
import subprocess
import sys

from absl import app, flags

import common

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/experiments/colorization", "Where the JSON and PNGs go.")
flags.DEFINE_string("data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_list("heads", ["regression"], "Colorizer heads: regression (colorize.py's default), classification.")
flags.DEFINE_integer("epochs", 3, "Training epochs.")
flags.DEFINE_integer("steps_per_epoch", 300, "Steps per epoch (0: one pass over the data).")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("eval_examples", 2000, "Test images scored.")
flags.DEFINE_integer("hidden_channels", 64, "Width of the conv stacks.")
flags.DEFINE_integer("residual_channels", 32, "Inner width of the residual blocks.")
flags.DEFINE_integer("num_residual_layers", 2, "Residual blocks per stack.")
flags.DEFINE_integer("feature_channels", 64, "Full-resolution channels fed to the ab head.")
flags.DEFINE_integer("rebalance_examples", 5000, "Images that set the rebalancing weights.")
flags.DEFINE_integer("seed", 0, "Random seed.")

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "colorize.py")
KEYS = ("psnr", "ab_error", "ab_auc")


def main(argv):
    del argv
    run = common.Run(FLAGS.output_dir, FLAGS.seed)
    rows, runs = {}, {}
    for head in FLAGS.heads:
        out = run.path(head)
        args = [sys.executable, SCRIPT, f"--head={head}", f"--output_dir={out}",
                f"--epochs={FLAGS.epochs}", f"--steps_per_epoch={FLAGS.steps_per_epoch}",
                f"--batch_size={FLAGS.batch_size}", f"--eval_examples={FLAGS.eval_examples}",
                f"--hidden_channels={FLAGS.hidden_channels}",
                f"--residual_channels={FLAGS.residual_channels}",
                f"--num_residual_layers={FLAGS.num_residual_layers}",
                f"--feature_channels={FLAGS.feature_channels}",
                f"--rebalance_examples={FLAGS.rebalance_examples}", f"--seed={FLAGS.seed}"]
        if FLAGS.data_dir:
            args.append(f"--data_dir={FLAGS.data_dir}")
        subprocess.run(args, check=True)  # the child imports the same installed tfvq
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
        # The gray baseline does not depend on the head: one row, from the first run.
        rows.setdefault("gray_baseline", {k: metrics["gray_baseline"][k] for k in KEYS})
        rows[f"colorizer_{head}"] = {k: metrics["model"][k] for k in KEYS}
        runs[head] = {"steps": metrics["steps"], "train_seconds": metrics["train_seconds"],
                      "wall_time_s": metrics["wall_time_s"], "parameters": metrics["parameters"],
                      "model_beats_gray": metrics["model_beats_gray"],
                      "test_split": metrics["test_split"]}
        shutil.copyfile(os.path.join(out, "colorized.png"), run.path(f"colorized_{head}.png"))

    common.write_results(run, {
        "experiment": "colorization (seed 004): Colorizer vs gray baseline",
        "dataset": "cifar10 (JPEG re-encoding, see shared/DATA.md)",
        "settings": {k: getattr(FLAGS, k) for k in (
            "heads", "epochs", "steps_per_epoch", "batch_size", "eval_examples",
            "hidden_channels", "residual_channels", "num_residual_layers", "feature_channels",
            "rebalance_examples", "seed")},
        "metrics": "psnr (dB, RGB), ab_error (mean Euclidean ab distance), ab_auc (raw accuracy "
                   "AuC over ab thresholds, Zhang et al. 2016); see tfvq.metrics.color",
        "table": rows,
        "runs": runs,
        "figures": [f"colorized_{head}.png" for head in FLAGS.heads],
    })


if __name__ == "__main__":
    app.run(main)
