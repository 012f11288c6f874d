"""Quality per unit of compute: the Sonnet-notebook VQ-VAE on CIFAR-10, validated at checkpoints.

Trains the VQ-VAE of Sonnet's example notebook (K=512, D=64, 128 hidden channels, 2 residual
layers of 32 channels, EMA decay 0.99, beta 0.25, batch 32, Adam) and, at each checkpoint step,
reports on a fixed validation slice (test[:--val_examples], in batches of --val_batch):

- normalised MSE (MSE divided by the variance of the training pixels, as in the paper);
- perplexity three ways: Keras `evaluate`'s mean of per-batch perplexities (batches of
  --val_batch images), the mean per-batch perplexity over batches of 32 images (the batch the
  notebook's training perplexity is measured on, 2,048 codes per batch), and the perplexity of
  the code histogram pooled over the whole slice;
- the training normalised MSE and perplexity averaged over the last --log_every steps (100:
  the statistic Sonnet's notebook prints, and so its published curve).

`--library=sonnet` trains the notebook's own model, written in Sonnet 2 modules
(benchmarks/sonnet_notebook.py), on the same batches and validates it the same way: Sonnet's
curve on this machine's JPEG copy of CIFAR-10, next to its published one.
Training time and FLOPs go with each row, so quality can be read per unit of compute.
Intermediate rows go to --json after every checkpoint, so a run that is stopped still leaves
its finished checkpoints.

`--quantizer` swaps the bottleneck for any quantizer of `tfvq.layers.QUANTIZERS` (with
`--quantizer_options`, a JSON dict of its keyword arguments), and `--preset` names the issue's
matched-budget configurations, each about 2^10 codes (10 bits) per position (`PRESETS`). Every
row then also gives PSNR, the bits per position, and usage and perplexity from the code counts
pooled over the validation slice (per level, averaged, for residual VQ). `--kmeans_init` and
`--dead_code_threshold` reach only the quantizers with a codebook to initialise and restart
(vq, ema and rvq's stages). `--table` prints the markdown table of finished runs' --json files.

    python benchmarks/quality.py --checkpoints=1000,5000,10000 --kmeans_init \
        --dead_code_threshold=2 --learning_rate=3e-4 --schedule=cosine --jit_compile \
        --results=benchmarks/RESULTS.md
    python benchmarks/quality.py --library=sonnet --learning_rate=3e-4 --jit_compile
    python benchmarks/quality.py --preset=fsq --checkpoints=1000 --kmeans_init \
        --dead_code_threshold=2 --learning_rate=3e-4 --schedule=cosine --jit_compile \
        --json=benchmarks/results/quality_fsq.json
    python benchmarks/quality.py --table benchmarks/results/quality_*.json
    python benchmarks/quality.py --seed_table --baseline=ema1024 \
        --table benchmarks/results/quality5k_*.json

The notebook's model is also the paper's CIFAR-10 one (section 4.1), so the training run of
RESULTS.md's issue-3 section (made by the former benchmarks/models.py: Adam 2e-4, restarts
below 1 vector per batch, no k-means; its steps/s are the steps over the train time here) is

    python benchmarks/quality.py --checkpoints=250,500,1000 --learning_rate=2e-4 \
        --dead_code_threshold=1 --log_every=250
"""

import json
import math
import shlex
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("library", "tfvq", ["tfvq", "sonnet"],
                  "tfvq: `tfvq.VQVAE`; sonnet: the notebook's model in Sonnet 2 modules "
                  "(benchmarks/sonnet_notebook.py) on the same data, the same-data reference "
                  "(its quantizer has no k-means init or dead-code restart).")
flags.DEFINE_list("checkpoints", ["1000", "5000", "10000"], "Step counts at which to validate.")
flags.DEFINE_integer("batch_size", 32, "Training batch size (Sonnet's notebook uses 32).")
flags.DEFINE_integer("val_examples", 2000, "Validation examples: test[:val_examples].")
flags.DEFINE_integer("val_batch", 250, "Validation batch size for Keras evaluate.")
flags.DEFINE_integer("num_embeddings", 512, "K (codes per level; FSQ's codebook_size picks its "
                     "levels, LFQ's its bits).")
flags.DEFINE_integer("embedding_dim", 64, "D (the notebook's 64; FSQ and LFQ take theirs from their "
                     "sizes).")
flags.DEFINE_string("quantizer", "ema", "A name in tfvq.layers.QUANTIZERS (vq, ema, fsq, lfq, rvq).")
flags.DEFINE_string("quantizer_options", "{}", "JSON dict of the quantizer's keyword arguments, "
                    'e.g. \'{"distance": "cosine"}\'; added to (and overriding) a preset\'s.')
flags.DEFINE_enum("preset", None, ["ema1024", "cosine1024", "rotation1024", "ema_rotation1024",
                                   "ema_factorized1024", "fsq", "lfq", "rvq2x32"],
                  "A matched-budget configuration of about 2^10 codes per position (PRESETS): "
                  "sets the quantizer, num_embeddings, embedding_dim and options.")
flags.DEFINE_integer("hidden_channels", 128, "Notebook: 128.")
flags.DEFINE_integer("residual_channels", 32, "Notebook: 32.")
flags.DEFINE_bool("kmeans_init", False, "k-means codebook initialisation on the first batch.")
flags.DEFINE_float("dead_code_threshold", 0.0, "Dead-code restart below this many vectors per "
                   "batch (EMA of usage); 0 disables. The mean is batch*64/K (4 at batch 32).")
flags.DEFINE_float("learning_rate", 3e-4, "Adam learning rate (peak, with a schedule); the "
                   "notebook uses 3e-4.")
flags.DEFINE_enum("schedule", "constant", ["constant", "cosine"],
                  "constant, or cosine decay to 0 over the last checkpoint's steps with "
                  "--warmup_steps of linear warm-up.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps (cosine schedule).")
flags.DEFINE_integer("schedule_steps", None, "Length of the cosine schedule; defaults to the "
                     "last checkpoint (set it to probe the start of a longer run).")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
flags.DEFINE_enum("dtype_policy", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy of the tfvq model (the quantizer's statistics stay "
                  "float32): mixed_bfloat16 runs the convs in bfloat16, which CPUs with "
                  "AVX512_BF16 or AMX execute faster.")
flags.DEFINE_integer("log_every", 100, "Steps per Keras epoch: training metrics are averaged "
                     "over one epoch (100: the notebook's running mean over the last 100 steps).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("data_dir", None, "TFDS data dir; defaults to $TFDS_DATA_DIR.")
flags.DEFINE_string("json", None, "Write rows here after every checkpoint.")
flags.DEFINE_string("results", None, "Markdown file to append the table to.")
flags.DEFINE_list("table", None, "Print the markdown table of these --json files (one row per "
                  "checkpoint) and exit, training nothing; shell globs work.")
flags.DEFINE_bool("seed_table", False, "With --table: one row per configuration over its seeds "
                  "(mean normalised MSE and its 95% interval) instead of one per run.")
flags.DEFINE_string("baseline", None, "With --seed_table: the preset that the other rows are "
                    "compared with, seed by seed (e.g. ema1024).")

# Sonnet's notebook (vqvae_example.ipynb, EMA quantizer) at the same steps.
SONNET_CURVE = {1000: 0.105, 5000: 0.061, 10000: 0.056}


# The matched-budget bottlenecks: about 2^10 codes, 10 bits, per position of the 8x8 map.
# Cosine and rotation both use the codebook learned by its loss ("vq"), the one the issue names
# for cosine and the one both papers state their methods with, so the two compare with each
# other directly; each differs from ema1024 in the codebook's update as well as in its option.
PRESETS = {
    "ema1024": dict(quantizer="ema", num_embeddings=1024),
    "cosine1024": dict(quantizer="vq", num_embeddings=1024, options={"distance": "cosine"}),
    "rotation1024": dict(quantizer="vq", num_embeddings=1024, options={"gradient": "rotation"}),
    # The same two options on ema1024's codebook update, so each differs from ema1024 in its
    # option alone (vector-quantize-pytorch's default pairing: EMA codes, rotation gradient).
    "ema_rotation1024": dict(quantizer="ema", num_embeddings=1024,
                             options={"gradient": "rotation"}),
    # ViT-VQGAN's factorized codes: searched in 8 dimensions, projected back to 64.
    "ema_factorized1024": dict(quantizer="ema", num_embeddings=1024,
                               options={"codebook_dim": 8}),
    # Mentzer et al. 2023, table 1: levels (8, 5, 5, 5), 1000 codes, log2(1000) = 9.97 bits.
    "fsq": dict(quantizer="fsq", num_embeddings=1000, embedding_dim=4,
                options={"levels": [8, 5, 5, 5]}),
    "lfq": dict(quantizer="lfq", num_embeddings=1024, embedding_dim=10),
    # Two EMA stages of 32 codes: 2 x 5 bits.
    "rvq2x32": dict(quantizer="rvq", num_embeddings=32,
                    options={"num_quantizers": 2, "quantizer": "ema"}),
}

# Quantizers with a codebook to k-means-initialise and restart (rvq: its vq or ema stages).
RESTARTABLE = ("vq", "ema", "rvq")


def quantizer_config(preset=None, quantizer="ema", num_embeddings=512, embedding_dim=64,
                     options=None, kmeans_init=False, dead_code_threshold=0.0, seed=0):
    """`(quantizer, num_embeddings, embedding_dim, quantizer_options)` for `tfvq.VQVAE`.

    A `preset` (a key of `PRESETS`) fixes the first three and starts the options; `options`
    are added on top. k-means init, dead-code restarts and the seed go only to the quantizers
    in `RESTARTABLE`: FSQ and LFQ have no codebook and take no such arguments.
    """
    merged = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"quality.py expects preset in {tuple(PRESETS)}; got {preset!r}")
        config = PRESETS[preset]
        quantizer = config["quantizer"]
        num_embeddings = config["num_embeddings"]
        embedding_dim = config.get("embedding_dim", embedding_dim)
        merged.update(config.get("options", {}))
    merged.update(options or {})
    if quantizer in RESTARTABLE:
        merged.update(kmeans_init=kmeans_init, dead_code_threshold=dead_code_threshold, seed=seed)
    return quantizer, num_embeddings, embedding_dim, merged


def build_vqvae(quantizer, num_embeddings, embedding_dim, quantizer_options, data_variance=None,
                hidden_channels=128, residual_channels=32):
    """The notebook's VQ-VAE (EMA decay 0.99, beta 0.25) around the quantizer asked for."""
    import tfvq

    return tfvq.VQVAE(
        (32, 32, 3), num_embeddings=num_embeddings, embedding_dim=embedding_dim,
        hidden_channels=hidden_channels, residual_channels=residual_channels,
        num_residual_layers=2, quantizer=quantizer, decay=0.99, commitment_cost=0.25,
        data_variance=data_variance, quantizer_options=quantizer_options)


def level_counts(codes, codebook_size, num_codebooks=1):
    """`(num_codebooks, codebook_size)` histogram of codes `(B, h, w)` or `(B, h, w, Q)`."""
    import numpy as np

    codes = np.asarray(codes).reshape(-1, num_codebooks)
    return np.stack([np.bincount(codes[:, q], minlength=codebook_size)
                     for q in range(num_codebooks)]).astype(np.float32)


def code_statistics(run, images, batch=32):
    """Mean per-batch perplexity over batches of `batch` images, pooled perplexity, usage.

    Perplexity and usage are `tfvq.layers.code_statistics` of the code counts, per level and
    averaged over levels for codes with several (residual VQ's `(B, h, w, Q)`).
    """
    import numpy as np

    from tfvq.layers import code_statistics as statistics

    codes = np.concatenate([
        np.asarray(run.encode_to_indices(images[i:i + 250])) for i in range(0, len(images), 250)
    ])
    k, q = run.num_embeddings, getattr(run, "num_codebooks", 1)
    per_batch = [
        float(statistics(level_counts(codes[i:i + batch], k, q))[0])
        for i in range(0, len(codes) - batch + 1, batch)
    ]
    pooled, usage = statistics(level_counts(codes, k, q))
    return float(np.mean(per_batch)), float(pooled), float(usage)


class TfvqRun:
    """`tfvq.VQVAE` behind the interface `main` drives (`SonnetRun` is the other one)."""

    def __init__(self, data_variance, learning_rate, quantizer="ema", num_embeddings=512,
                 embedding_dim=64, quantizer_options=None):
        import keras

        self.model = build_vqvae(quantizer, num_embeddings, embedding_dim, quantizer_options,
                                 data_variance, FLAGS.hidden_channels, FLAGS.residual_channels)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                           jit_compile=FLAGS.jit_compile)
        q = self.model.quantizer
        self.num_embeddings = q.codebook_size
        self.num_codebooks = q.num_codebooks
        self.embedding_dim = q.embedding_dim
        self.bits_per_position = q.bits_per_position
        self.num_params = self.model.count_params()

    def train(self, dataset, steps):
        history = self.model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        return {k: v[-1] for k, v in history.history.items()}

    def validate(self, val):
        return self.model.evaluate(val, return_dict=True, verbose=0)

    def encode_to_indices(self, images):
        return self.model.encode_to_indices(images)


def _restarts(config):
    """What a row says of k-means init and dead-code restarts."""
    if config["quantizer"] not in RESTARTABLE:
        return f"n/a ({config['quantizer']}: no codebook)"
    options = config["quantizer_options"]
    parts = (["k-means init"] if options.get("kmeans_init") else []) + (
        [f"restart < {options['dead_code_threshold']:g}"]
        if options.get("dead_code_threshold") else [])
    return ", ".join(parts) or "none"


def _load_records(paths):
    """`(record, name, config, options)` for each --json file, as the tables label them."""
    loaded = []
    for path in paths:
        with open(path) as f:
            record = json.load(f)
        config = record.get("quantizer") or dict(quantizer="ema", quantizer_options={})
        options = {k: v for k, v in config["quantizer_options"].items()
                   if k not in ("kmeans_init", "dead_code_threshold", "seed")}
        name = record["flags"].get("preset") or (
            f"({config['quantizer']}, K={config['codebook_size']})"
            if "codebook_size" in config else "-")
        if record["flags"].get("dtype_policy", "float32") != "float32":
            name += f" ({record['flags']['dtype_policy']})"
        loaded.append((record, name, config, options))
    return loaded


def markdown_table(paths):
    """One markdown row per checkpoint of each --json file written by a run of this script."""
    lines = [
        "| preset | quantizer | options | k-means / restarts | seed | bits/position | steps | "
        "train time (s) | steps/s | val normalised MSE | val PSNR (dB) | val usage (pooled) | "
        "val perplexity (pooled) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for record, name, config, options in _load_records(paths):
        for r in record["rows"]:
            psnr = "-" if r.get("val_psnr") is None else f"{r['val_psnr']:.2f}"
            bits = r.get("bits_per_position", config.get("bits_per_position"))
            lines.append(
                f"| {name} | {config['quantizer']} | "
                f"{json.dumps(options) if options else '-'} | {_restarts(config)} | "
                f"{record['flags'].get('seed', '-')} | "
                f"{'-' if bits is None else f'{bits:.2f}'} | {r['steps']} | {r['seconds']:.0f} | "
                f"{r['steps_per_s']:.2f} | {r['val_nmse']:.4f} | {psnr} | {r['val_usage']:.3f} | "
                f"{r['val_perplexity_pooled']:.1f} |")
    return "\n".join(lines)


def _interval_cells(interval, digits=4):
    if interval["low"] is None:
        return [f"{interval['mean']:.{digits}f}", "-"]
    return [f"{interval['mean']:.{digits}f}",
            f"[{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"]


def seed_table(paths, baseline=None):
    """Validation normalised MSE over seeds: one markdown row per configuration and checkpoint.

    Runs that differ only in `--seed` are one configuration. Each row gives the mean and its
    95% Student-t interval (`tfvq.utils.stats.mean_interval`); with `baseline` (a preset's
    name, e.g. "ema1024", run without extra options) also the difference from the baseline
    paired by seed, over the seeds both have: same seed, same data order, so the pairing
    removes the spread that the batches cause.

    Args:
        paths: --json files written by runs of this script.
        baseline: the preset the others are compared with, or None.

    Returns:
        The table, as markdown text.
    """
    from tfvq.utils.stats import mean_interval

    groups = {}
    for record, name, config, options in _load_records(paths):
        seed = record["flags"].get("seed", 0)
        label = (name, json.dumps(options) if options else "-", _restarts(config))
        for r in record["rows"]:
            runs = groups.setdefault(label + (r["steps"],), {})
            if seed in runs:
                raise ValueError(f"seed_table: two runs of {label} with seed {seed}")
            runs[seed] = r["val_nmse"]
    header = ("| preset | options | k-means / restarts | steps | seeds | mean val normalised MSE "
              "| 95% interval |")
    rule = "| --- | --- | --- | ---: | --- | ---: | --- |"
    if baseline is not None:
        header += f" paired difference from {baseline} | 95% interval | verdict |"
        rule += " ---: | --- | --- |"
    lines = [header, rule]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3])):
        runs = groups[key]
        cells = list(key[:3]) + [str(key[3]), ", ".join(str(seed) for seed in sorted(runs))]
        cells += _interval_cells(mean_interval(list(runs.values())))
        if baseline is not None:
            cells += _paired_cells(groups, baseline, key, runs)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_cells(groups, baseline, key, runs):
    from tfvq.utils.stats import mean_interval

    candidates = [k for k in groups if k[0] == baseline and k[1] == "-" and k[3] == key[3]]
    if len(candidates) != 1:
        raise ValueError(f"seed_table expects one {baseline} configuration at {key[3]} steps; "
                         f"found {len(candidates)}")
    if candidates[0] == key:
        return ["-", "-", "baseline"]
    reference = groups[candidates[0]]
    seeds = sorted(set(runs) & set(reference))
    if not seeds:
        return ["-", "-", "no common seed"]
    difference = mean_interval([runs[seed] - reference[seed] for seed in seeds])
    if difference["low"] is None:
        verdict = "undetermined (one seed)"
    elif difference["high"] < 0:
        verdict = "lower"
    elif difference["low"] > 0:
        verdict = "higher"
    else:
        verdict = "no detectable difference"
    return _interval_cells(difference) + [verdict]


def _quantizer_flags():
    """`quantizer_config`'s result for the flags, refusing a preset that flags contradict."""
    options = json.loads(FLAGS.quantizer_options)
    if not isinstance(options, dict):
        raise ValueError(f"quality.py expects --quantizer_options a JSON dict; got "
                         f"{FLAGS.quantizer_options!r}")
    if FLAGS.preset is not None:
        fixed = [n for n in ("quantizer", "num_embeddings", "embedding_dim") if FLAGS[n].present]
        if fixed:
            raise ValueError(f"quality.py expects --preset={FLAGS.preset} without "
                             f"{', '.join('--' + n for n in fixed)}: the preset sets them")
    if FLAGS.library == "sonnet" and (FLAGS.preset or FLAGS.quantizer != "ema" or options):
        raise ValueError("quality.py --library=sonnet trains Sonnet's EMA quantizer only; got "
                         f"--preset={FLAGS.preset} --quantizer={FLAGS.quantizer} "
                         f"--quantizer_options={FLAGS.quantizer_options}")
    return quantizer_config(FLAGS.preset, FLAGS.quantizer, FLAGS.num_embeddings,
                            FLAGS.embedding_dim, options, FLAGS.kmeans_init,
                            FLAGS.dead_code_threshold, FLAGS.seed)


def main(argv):
    if FLAGS.table:
        # A shell glob after --table gives one path to the flag and the rest as arguments.
        paths = FLAGS.table + argv[1:]
        print(seed_table(paths, FLAGS.baseline) if FLAGS.seed_table else markdown_table(paths))
        return
    del argv
    import keras
    import numpy as np

    import tfvq

    quantizer, num_embeddings, embedding_dim, options = _quantizer_flags()
    if FLAGS.library == "sonnet" and FLAGS.dtype_policy != "float32":
        raise ValueError(f"quality.py --library=sonnet runs in float32 only; got "
                         f"--dtype_policy={FLAGS.dtype_policy}")
    keras.config.set_dtype_policy(FLAGS.dtype_policy)
    keras.utils.set_random_seed(FLAGS.seed)
    checkpoints = sorted(int(c) for c in FLAGS.checkpoints)
    variance = tfvq.data.pixel_variance("cifar10", "train", data_dir=FLAGS.data_dir,
                                        max_examples=10_000)
    train = tfvq.data.load("cifar10", "train", FLAGS.batch_size, data_dir=FLAGS.data_dir,
                           seed=FLAGS.seed, drop_remainder=True).repeat()
    val = tfvq.data.load("cifar10", f"test[:{FLAGS.val_examples}]", FLAGS.val_batch,
                         data_dir=FLAGS.data_dir)
    val_images = np.concatenate(list(val.as_numpy_iterator()))
    lr = FLAGS.learning_rate
    if FLAGS.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if FLAGS.warmup_steps else lr,
            (FLAGS.schedule_steps or checkpoints[-1]) - FLAGS.warmup_steps,
            warmup_target=lr if FLAGS.warmup_steps else None, warmup_steps=FLAGS.warmup_steps)
    if FLAGS.library == "sonnet":
        from sonnet_notebook import SonnetRun  # benchmarks/, on sys.path when run

        run = SonnetRun(variance, lr, jit_compile=FLAGS.jit_compile,
                        num_embeddings=FLAGS.num_embeddings, hidden=FLAGS.hidden_channels,
                        residual=FLAGS.residual_channels)
        train = iter(train)  # one iterator, so each chunk continues the same stream
    else:
        run = TfvqRun(variance, lr, quantizer, num_embeddings, embedding_dim, options)
    num_codebooks = getattr(run, "num_codebooks", 1)
    bits = getattr(run, "bits_per_position", math.log2(run.num_embeddings))
    config = dict(quantizer=quantizer, quantizer_options=options,
                  codebook_size=run.num_embeddings, num_codebooks=num_codebooks,
                  embedding_dim=getattr(run, "embedding_dim", embedding_dim),
                  bits_per_position=bits, num_params=run.num_params)

    # Siblings in benchmarks/, on sys.path when this script runs (imported here, so that the
    # tests can load this file by its path alone).
    from flops import train_step_flops
    from report import cpu_model, publish

    # Analytic FLOPs of one training step: the distance matmul against every code of every
    # level; FSQ rounds and searches nothing, and LFQ's exact entropy over its 2^D codes costs
    # about such a matmul.
    searched = 0 if quantizer == "fsq" else num_codebooks * run.num_embeddings
    step_flops = train_step_flops(FLAGS.batch_size, hidden=FLAGS.hidden_channels,
                                  residual=FLAGS.residual_channels, num_embeddings=searched,
                                  embedding_dim=config["embedding_dim"])

    rows, done, train_seconds, logs = [], 0, 0.0, {}
    for target in checkpoints:
        while done < target:
            steps = min(FLAGS.log_every, target - done)
            start = time.time()
            logs = run.train(train, steps)
            train_seconds += time.time() - start
            done += steps
            print(f"[train] step {done}: {done / train_seconds:.2f} steps/s, "
                  f"normalised MSE {logs['normalized_mse']:.4f}, perplexity "
                  f"{logs['perplexity']:.1f}", flush=True)
        val_logs = run.validate(val)
        per32, pooled, usage = code_statistics(run, val_images)
        rows.append(dict(steps=done, seconds=train_seconds, steps_per_s=done / train_seconds,
                         pflop=done * step_flops / 1e15, val_nmse=val_logs["normalized_mse"],
                         val_perplexity=val_logs["perplexity"], val_perplexity_32=per32,
                         val_perplexity_pooled=pooled, val_usage=usage,
                         val_psnr=val_logs.get("psnr"), bits_per_position=bits,
                         train_nmse=logs["normalized_mse"],
                         train_perplexity=logs["perplexity"], sonnet=SONNET_CURVE.get(done)))
        print(f"[val] {rows[-1]}", flush=True)
        if FLAGS.json:
            with open(FLAGS.json, "w") as f:
                json.dump(dict(flags={k: FLAGS[k].value for k in _FLAG_NAMES}, quantizer=config,
                               cpu=cpu_model(), rows=rows), f, indent=1)

    # A preset's own settings stay out of the command: given beside it, they are refused.
    preset_set = ("quantizer", "num_embeddings", "embedding_dim") if FLAGS.preset else ()
    command = "python benchmarks/quality.py " + " ".join(
        shlex.quote(f"--{k}={','.join(v) if isinstance(v, list) else v}")
        for k, v in ((k, FLAGS[k].value) for k in _FLAG_NAMES)
        if v is not None and k not in preset_set)
    table = [
        f"`{command}` — {time.strftime('%Y-%m-%d')}, 2-core CPU, "
        f"{run.num_params:,} parameters, {step_flops / 1e9:.2f} GFLOP per step",
        "",
        "| steps | train time (s) | PFLOP | val normalised MSE | Sonnet notebook (train) | "
        f"train normalised MSE (last {FLAGS.log_every} steps) | "
        f"val perplexity (batches of {FLAGS.val_batch}) | val perplexity (batches of 32) | "
        "val perplexity (pooled) | codes used | train perplexity |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ] + [
        f"| {r['steps']} | {r['seconds']:.0f} | {r['pflop']:.3f} | {r['val_nmse']:.4f} | "
        f"{r['sonnet'] if r['sonnet'] else '-'} | {r['train_nmse']:.4f} | "
        f"{r['val_perplexity']:.1f} | "
        f"{r['val_perplexity_32']:.1f} | {r['val_perplexity_pooled']:.1f} | "
        f"{r['val_usage']:.3f} | {r['train_perplexity']:.1f} |"
        for r in rows
    ]
    text = "\n".join(table)
    publish(text, FLAGS.results)


_FLAG_NAMES = ("library", "preset", "quantizer", "quantizer_options", "checkpoints", "batch_size",
               "val_examples", "val_batch", "num_embeddings", "embedding_dim", "hidden_channels",
               "residual_channels", "kmeans_init", "dead_code_threshold", "learning_rate",
               "schedule", "warmup_steps", "schedule_steps", "jit_compile", "dtype_policy",
               "log_every", "seed")

if __name__ == "__main__":
    app.run(main)
