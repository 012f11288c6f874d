"""Trains a Colorizer on CIFAR-10 and scores it against the gray baseline (ab = 0).

    python examples/colorize.py --output_dir=runs/colorize
    python examples/colorize.py --head=classification --epochs=30 --steps_per_epoch=0 \
        --strategy=mirrored --output_dir=runs/colorize_cls   # the paper's method, longer

Zhang, Isola and Efros 2016: predict the ab channels of CIE L*a*b* from L, by regression
(--head=regression, the default) or by classification over quantized ab bins with class
rebalancing (fitted here on --rebalance_examples training images with
`Colorizer.fit_rebalancing`) and the annealed-mean decoding (--head=classification). The
default is the short CPU run; the classification head favours vivid, rarer colours and in the
paper beats gray on the raw AuC by only 0.4 points after full ImageNet training, so give it many
more steps.

Writes into --output_dir: metrics.json (PSNR, mean ab error and raw-accuracy AuC on the test
images, for the model and for predicting gray), colorized.png (rows: gray input, prediction,
truth), history.csv and model.keras. Run it again with the same --output_dir after an
interruption and it resumes from the last finished epoch; a finished training is loaded, not
repeated. Under --strategy=multiworker (TF_CONFIG names the workers) every worker runs the same
command, with its own --output_dir or a shared one: only the chief writes those files, and each
worker keeps its own backup folder. `train_and_evaluate(config, workdir)` is the whole job, for
tests and notebooks.
"""

import dataclasses
import json
import os
import time

from absl import app, flags, logging

import common_flags


@dataclasses.dataclass
class Config:
    """The job's settings; every field is also a command-line flag of the same name."""

    head: str = "regression"
    dataset: str = "cifar10"
    epochs: int = 3
    steps_per_epoch: int = 300
    batch_size: int = 32
    train_examples: int = 0
    rebalance_examples: int = 5000
    rebalance_lambda: float = 0.5
    temperature: float = 0.38
    eval_examples: int = 2000
    num_images: int = 8
    strategy: str = "auto"
    data_dir: str = None
    learning_rate: float = 1e-3
    hidden_channels: int = 64
    residual_channels: int = 32
    num_residual_layers: int = 2
    downsample_stages: int = 2
    feature_channels: int = 64
    seed: int = 0


FLAGS = flags.FLAGS


def define_flags():
    """The command line: one flag per `Config` field, plus --output_dir (defined when run)."""
    common_flags.define(
        Config, ["dataset", "epochs", "steps_per_epoch", "batch_size", "train_examples",
                 "eval_examples", "strategy", "data_dir", "output_dir", "learning_rate",
                 "hidden_channels", "residual_channels", "num_residual_layers",
                 "downsample_stages", "seed"],
        output_dir="runs/colorize", helps={"dataset": "tfds dataset of RGB images."})
    flags.adopt_module_key_flags(common_flags)  # listed by --help as the script's own
    flags.DEFINE_enum("head", Config.head, ["classification", "regression"],
                      "ab regression (L2, the paper's baseline; beats gray within the short "
                      "default run) or ab bins with class rebalancing (the paper's method; ~5x "
                      "slower per step on CPU and needs far longer training).")
    flags.DEFINE_integer("rebalance_examples", Config.rebalance_examples,
                         "Training images whose ab distribution sets the rebalancing weights.")
    flags.DEFINE_float("rebalance_lambda", Config.rebalance_lambda,
                       "Mix of the ab prior with a uniform one (paper: 0.5).")
    flags.DEFINE_float("temperature", Config.temperature,
                       "Annealed-mean temperature (paper: 0.38).")
    flags.DEFINE_integer("num_images", Config.num_images, "Test images shown in colorized.png.")
    flags.DEFINE_integer("feature_channels", Config.feature_channels,
                         "Full-resolution channels fed to the ab head.")


def build_model(config, image_shape):
    import tfvq

    head_options = {}
    if config.head == "classification":
        head_options = dict(temperature=config.temperature,
                            rebalance_lambda=config.rebalance_lambda)
    return tfvq.Colorizer(image_shape, head=config.head, head_options=head_options,
                          feature_channels=config.feature_channels,
                          hidden_channels=config.hidden_channels,
                          residual_channels=config.residual_channels,
                          num_residual_layers=config.num_residual_layers,
                          downsample_stages=config.downsample_stages)


def train_and_evaluate(config, workdir):
    """Trains (or resumes, or loads) a Colorizer, scores it and gray, and writes to `workdir`.

    Args:
        config: a `Config`.
        workdir: the output folder; a rerun with the same folder resumes.

    Returns:
        The metrics dict written to `workdir/metrics.json` (also returned on the other workers
        of a multi-worker run, which write nothing).
    """
    import keras
    import numpy as np

    import tfvq

    start = time.time()
    strategy = tfvq.training.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    os.makedirs(workdir, exist_ok=True)

    info = tfvq.data.info(config.dataset, data_dir=config.data_dir)
    if info.image_shape is None or info.image_shape[-1] != 3:
        raise ValueError(f"colorize needs a dataset of fixed-size RGB images; {config.dataset!r} "
                         f"has image shape {info.image_shape}")
    train_split = f"train[:{config.train_examples}]" if config.train_examples else "train"
    train = tfvq.data.load(config.dataset, train_split, config.batch_size,
                           data_dir=config.data_dir, augment="flip", seed=config.seed,
                           drop_remainder=True)
    test_split = f"test[:{config.eval_examples}]" if config.eval_examples else "test"
    test = tfvq.data.load(config.dataset, test_split, 250, data_dir=config.data_dir)

    def build():
        model = build_model(config, info.image_shape)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      jit_compile=tfvq.training.jit_compile_for(strategy))
        if config.head == "classification":
            # The paper's prior: the ab distribution of training images, smoothed and mixed
            # with a uniform one; rare (saturated) colours get the larger weights.
            sample = tfvq.data.load(config.dataset, f"train[:{config.rebalance_examples}]", 500,
                                    data_dir=config.data_dir, shuffle=False, cache=False)
            weights = model.fit_rebalancing(sample)
            logging.info("Rebalancing weights: min %.3f, max %.3f", weights.min(), weights.max())
        return model

    model, _, train_seconds = common_flags.fit_resumable(
        build, train, config.epochs, workdir, steps_per_epoch=config.steps_per_epoch,
        strategy=strategy, verbose=2)

    scores = {
        "model": tfvq.metrics.colorization_metrics(model, test),
        "gray_baseline": tfvq.metrics.colorization_metrics(tfvq.metrics.gray_colorization, test),
    }
    better = {"psnr": np.greater, "ab_error": np.less, "ab_auc": np.greater}
    metrics = {
        "head": config.head,
        "dataset": config.dataset,
        "test_split": test_split,
        **scores,
        "model_beats_gray": {
            key: bool(op(scores["model"][key], scores["gray_baseline"][key]))
            for key, op in better.items()
        },
        "train_history": common_flags.read_history(common_flags.history_csv(workdir)),
        "steps": int(model.optimizer.iterations.numpy()),
        "global_batch_size": config.batch_size,
        "replicas": strategy.num_replicas_in_sync,
        "parameters": model.count_params(),
        "train_seconds": round(train_seconds, 1),
    }

    if tfvq.training.worker_index(strategy) != 0:
        return metrics  # the chief writes; the scores above were collectives all workers ran

    # A plain forward pass on this machine: `predict` would be a collective that the other
    # workers, already done, would never join.
    images = next(iter(test))[: config.num_images]
    rows = [tfvq.metrics.gray_colorization(images), model(images, training=False), images]
    tfvq.plots.image_grid(
        np.concatenate([np.asarray(row) for row in rows]),
        nrows=3,
        title="gray input / prediction / truth",
        path=os.path.join(workdir, "colorized.png"),
    )
    metrics["wall_time_s"] = round(time.time() - start, 1)
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps({k: metrics[k] for k in ("model", "gray_baseline", "model_beats_gray",
                                              "steps", "wall_time_s")}, indent=2))
    return metrics


def main(argv):
    del argv
    train_and_evaluate(common_flags.config_from_flags(Config), FLAGS.output_dir)


if __name__ == "__main__":
    define_flags()
    app.run(main)
