"""Every published number from one command: reruns the examples and experiments, writes
`results/`, and generates the READMEs' result blocks from it.

    python examples/results.py run                      # every run below, at its settings
    python examples/results.py run --only=cifar10,faces_vae
    python examples/results.py run --resume             # after an interruption: keeps the
                                                        # scripts' backups, skips finished runs
    python examples/results.py update                   # README blocks from results/*.json
    python examples/results.py check                    # exit 1 where a README block differs

Each run (`RUNS`) is a script with the settings its docstring documents. It runs in a
subprocess in `runs/results/<name>/`. Its own JSON and figures are then copied into the
committed `results/<name>/`, and `results/<name>.json` records the script's numbers with the
command, git commit, date, wall and CPU time, and the CPU (`tfvq.utils.machine`). The READMEs
hold one generated block per run, between `<!-- results:NAME -->` and `<!-- /results:NAME -->`
lines. `update` rewrites those blocks from the committed JSON, and `check` (run by the test
suite, tests/examples/test_results.py) fails when a block differs from what they print, so no
published number can be edited by hand.

The benchmarks are not here: each writes its own section of benchmarks/RESULTS.md, or JSON
under benchmarks/results/, with its command (see benchmarks/report.py).

Why a script of its own: the runs are programs with flags, resumable folders and figures, not
functions to call in one process (each sets its own seeds, threads and Keras backend state).
"""

import dataclasses
import datetime
import fnmatch
import functools
import importlib.util
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "results")
WORK_DIR = os.path.join(ROOT, "runs", "results")
READMES = ("README.md", os.path.join("examples", "experiments", "README.md"))


@dataclasses.dataclass(frozen=True)
class Run:
    """One script behind published numbers.

    Attributes:
      script: path from the repository root.
      flags: its settings (the defaults, unless the docstring documents others).
      numbers: the JSON file the script writes its numbers to, in its output folder.
      keep: what else of its output folder is committed (figures, small tables).
      output_flag: the flag that names its output folder.
      show: figures the README shows inline (the rest are linked).
      summary: the table renderer in examples/experiments/summarize.py (default: the run's
        name), for runs of one script at other settings.
      title: the block's heading (default: the script's own `experiment` name).
    """

    script: str
    flags: tuple = ()
    numbers: str = "results.json"
    keep: tuple = ("*.png",)
    output_flag: str = "--output_dir"
    show: tuple = ()
    summary: str = None
    title: str = None


_EXPERIMENTS = "examples/experiments/"
RUNS = {
    "cifar10": Run("examples/cifar10.py", numbers="metrics.json",
                   keep=("reconstructions.png", "training_curves.png", "history.csv")),
    "generate": Run("examples/generate.py", numbers="metrics.json",
                    keep=("samples.png", "interpolation.png", "reconstructions.png")),
    "colorize": Run("examples/colorize.py", numbers="metrics.json", keep=("colorized.png",)),
    "tune": Run("examples/tune.py", numbers="metrics.json", output_flag="--directory",
                keep=("best_hyperparameters.json", "trials.csv", "search.png")),
    "compare_models": Run(_EXPERIMENTS + "compare_models.py"),
    "vae_latents": Run(_EXPERIMENTS + "vae_latents.py",
                       show=("mnist_latents_2d.png", "cifar10_latents_2d.png",
                             "mnist_loss_curves.png", "cifar10_loss_curves.png")),
    "ae_design": Run(_EXPERIMENTS + "ae_design.py"),
    "augmentation": Run(_EXPERIMENTS + "augmentation.py", show=("accuracy.png",)),
    "colorization": Run(_EXPERIMENTS + "colorization.py"),
    "preprocessing": Run(_EXPERIMENTS + "preprocessing.py"),
    # keras.io's MNIST VQ-VAE and tfvq's at keras.io's budget (30 + 30 epochs at batch 128),
    # tfvq with 64 codes against keras.io's 128 and a prior of 64 channels (32 underfits),
    # trained with a cosine learning rate and weight decay (at a constant rate it overfits),
    # on the codes of the first 90% of the training images and validated on the rest, as
    # keras.io's prior is.
    "keras_io_anchor": Run(
        _EXPERIMENTS + "keras_io_anchor.py",
        flags=("--vqvae_epochs=30", "--prior_epochs=30", "--steps_per_epoch=0",
               "--num_embeddings=64", "--prior_channels=64", "--prior_schedule=cosine",
               "--prior_weight_decay=0.05", "--prior_holdout=0.1")),
    # The VQ-VAE paper's CIFAR-10 network (section 4.1) at about one CPU-hour: issue 19's
    # bits/dim anchor, with the gap to the paper's 4.67 split into its terms.
    "paper_bits_per_dim": Run(
        _EXPERIMENTS + "compare_models.py",
        flags=("--models=vqvae", "--hidden_channels=256", "--residual_channels=256",
               "--batch_size=128", "--steps=1000", "--prior_steps=1000",
               "--test_examples=10000"),
        summary="paper_bits_per_dim",
        title="The VQ-VAE paper's CIFAR-10 network at about one CPU-hour: bits/dim and the gap"),
    "faces_vae": Run(_EXPERIMENTS + "faces_vae.py",
                     show=("interpolation.png", "latents_pca.png", "latents_tsne.png")),
}

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("only", None, f"Runs to do (default: all of {list(RUNS)}).")
    flags.DEFINE_bool("resume", False,
                      "Keep each run's folder in runs/results/ (the scripts resume from their "
                      "backups there) and skip runs already recorded at this commit.")
    flags.DEFINE_string("results_dir", RESULTS_DIR, "Where the committed results go.")


# ----------------------------------------------------------------------------------------------
# Running


def git_commit(root=ROOT):
    """`(commit, dirty)` of the checkout at `root`; (None, None) outside a git checkout.

    `dirty` is whether a tracked file other than this pipeline's own outputs (`results/` and
    the READMEs' blocks) differs from the commit: otherwise every run after the first of one
    `run` would count the records written before it as local changes.
    """
    outputs = [f":(exclude){path}" for path in ("results", *READMES)]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                 ".", *outputs],
                                cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


def _versions():
    from tfvq.utils.machine import installed_versions  # loads TensorFlow: not for `check`

    return {"python": sys.version.split()[0],
            **installed_versions(("tensorflow-cpu", "tensorflow", "keras"))}


def _children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _kept_files(folder, patterns):
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)
            and os.path.isfile(os.path.join(folder, n))]


def run_one(name, spec, results_dir=RESULTS_DIR, work_dir=WORK_DIR, resume=False, root=ROOT):
    """Runs `spec` and records it as `results_dir/<name>.json` plus `results_dir/<name>/`.

    Args:
      name: the run's name (its key in `RUNS`).
      spec: its `Run`.
      results_dir: the committed results folder.
      work_dir: where the script's own output folders live (not committed).
      resume: keep the script's output folder, so that it resumes from its backups.
      root: the repository root the script path and the commit are read from.

    Returns:
      The record written.

    Raises:
      RuntimeError: the script failed; nothing is recorded for it then.
    """
    # The code that runs, not what the tree holds at the end: read before the TensorFlow import
    # below, which takes seconds while the tree may change.
    commit, dirty = git_commit(root)
    from tfvq.utils.machine import describe_cpu  # loads TensorFlow: not for `check`

    output = os.path.join(work_dir, name)
    # A resumed run's wall and CPU time are those of this invocation alone: the record says so.
    resumed = bool(resume and os.path.isdir(output) and os.listdir(output))
    if not resume and os.path.exists(output):
        shutil.rmtree(output)  # a finished run left there would be loaded, not rerun
    os.makedirs(output, exist_ok=True)
    argv = [sys.executable, os.path.join(root, spec.script), *spec.flags,
            f"{spec.output_flag}={output}"]
    shown = " ".join(["python", spec.script, *spec.flags])
    print(f"[results] {name}: {shown}", flush=True)
    load_average = [round(v, 2) for v in os.getloadavg()]  # other jobs inflate wall time
    cpu_before, start = _children_cpu_seconds(), time.time()
    done = subprocess.run(argv, cwd=root)
    wall, cpu = time.time() - start, _children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"{shown} failed with exit status {done.returncode}; its output "
                           f"folder {output} is kept (run again with --resume)")
    with open(os.path.join(output, spec.numbers), encoding="utf-8") as f:
        numbers = json.load(f)
    files_dir = os.path.join(results_dir, name)
    if os.path.exists(files_dir):
        shutil.rmtree(files_dir)
    os.makedirs(files_dir)
    files = [spec.numbers, *[n for n in _kept_files(output, spec.keep) if n != spec.numbers]]
    for file_name in files:
        shutil.copy2(os.path.join(output, file_name), os.path.join(files_dir, file_name))
    record = {
        "name": name,
        "command": shown,
        "regenerate": f"python examples/results.py run --only={name}",
        "commit": commit,
        "dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 1),
        "cpu_time_s": round(cpu, 1),
        "resumed": resumed,
        "load_average_start": load_average,
        "cpu": describe_cpu(),
        "versions": _versions(),
        "files": [f"{name}/{n}" for n in files],
        "numbers": numbers,
    }
    with open(os.path.join(results_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return record


def load_records(results_dir=RESULTS_DIR):
    """`{name: record}` for every run recorded in `results_dir`."""
    records = {}
    for name in RUNS:
        path = os.path.join(results_dir, f"{name}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                records[name] = json.load(f)
    return records


# ----------------------------------------------------------------------------------------------
# Rendering: one Markdown block per run, for the READMEs


def _f(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _minutes(seconds):
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def provenance(record):
    """The line under every block: command, when, on what, how long."""
    commit = (record["commit"] or "unknown")[:7] + (" with local changes" if record["dirty"]
                                                    else "")
    return (f"`{record['command']}` ({record['regenerate']}): {record['date'][:10]}, commit "
            f"{commit}, {record['cpu']}; wall {_minutes(record['wall_time_s'])}, CPU "
            f"{_minutes(record['cpu_time_s'])}.")


def _test_line(test):
    parts = []
    if "normalized_mse" in test:
        parts.append(f"normalised MSE {_f(test['normalized_mse'], 3)}")
    if "psnr" in test:
        parts.append(f"PSNR {_f(test['psnr'], 1)} dB")
    if "perplexity" in test:
        parts.append(f"perplexity {_f(test['perplexity'], 0)} pooled over the pass")
    if "usage" in test:
        parts.append(f"{_f(100 * test['usage'], 0)}% of codes used")
    return ", ".join(parts)


def render_cifar10(record):
    m = record["numbers"]
    return [
        f"Main job ({m['model']} on {m['dataset']}, {m['steps']} steps at batch "
        f"{m['global_batch_size']}, `jit_compile` {m['jit_compile']}), on the test split: "
        f"{_test_line(m['test'])}.",
        "", provenance(record)]


def render_generate(record):
    m = record["numbers"]
    terms = m["bits_per_dim_terms"]
    parts = ", ".join(f"{k.replace('_', ' ')} {_f(v, 2)}" for k, v in terms.items()
                      if k != "bits_per_dim" and isinstance(v, float))
    codes = m.get("test_codes")  # recorded since the keras.io anchor (older runs lack it)
    code_head = " test code perplexity | always the most frequent code |" if codes else ""
    code_cells = (f" {_f(codes['perplexity'], 1)} | {_f(codes['most_frequent_code_accuracy'], 3)} |"
                  if codes else "")
    return [
        "| test bits/dim | terms | prior val. accuracy (keras.io at 30 + 30 epochs: "
        f"{m['keras_io_prior_val_accuracy']}) |{code_head} prior NLL (nats/code) | sampling "
        f"{m['samples']} images (s) |",
        "|---|---|---|" + ("---|---|" if codes else "") + "---|---|",
        f"| {_f(m['bits_per_dim'], 2)} | {parts} | {_f(m['prior_val_accuracy'], 3)} |"
        f"{code_cells} {_f(m['prior_val_nll_nats_per_code'], 3)} | "
        f"{_f(m['sampling_seconds'], 1)} |",
        "", provenance(record)]


def render_colorize(record):
    m = record["numbers"]
    rows = ["| test | PSNR (dB) | ab error | AuC |", "|---|---|---|---|"]
    for key, label in (("model", f"Colorizer ({m['head']})"), ("gray_baseline", "gray (ab = 0)")):
        s = m[key]
        rows.append(f"| {label} | {_f(s['psnr'], 2)} | {_f(s['ab_error'], 2)} | "
                    f"{_f(s['ab_auc'], 4)} |")
    return rows + ["", f"{m['steps']} steps at batch {m['global_batch_size']}, on "
                       f"{m['test_split']}.", "", provenance(record)]


def render_tune(record):
    m = record["numbers"]
    best = ", ".join(f"{k}={v}" for k, v in m["best_hyperparameters"].items())
    return [
        f"{m['tuner']} search over {m['model']} on {m['dataset']}: {m['completed_trials']} of "
        f"{m['trials']} trials completed; best {m['objective']} {_f(m['best_objective'], 5)} "
        f"({best}); the best configuration retrained: {_test_line(m['test'])}.",
        "", provenance(record)]


@functools.lru_cache(maxsize=None)
def _summarize():
    """examples/experiments/summarize.py, the experiments' table renderers, loaded by path:
    the experiment scripts are a folder of scripts, not a package."""
    path = os.path.join(ROOT, "examples", "experiments", "summarize.py")
    spec = importlib.util.spec_from_file_location("experiments_summarize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_experiment(name, record):
    numbers = record["numbers"]
    lines = [f"### {RUNS[name].title or numbers.get('experiment', name)}", ""]
    lines += getattr(_summarize(), RUNS[name].summary or name)(numbers)
    figures = [f for f in record["files"] if f.endswith(".png")]
    shown = [f"{name}/{f}" for f in RUNS[name].show if f"{name}/{f}" in figures]
    lines += ["", provenance(record)]
    lines += [line for f in shown for line in ("", f"![{f.split('/')[-1]}](../../results/{f})")]
    linked = [f for f in figures if f not in shown]
    if linked:
        lines += ["", ("Other figures: " if shown else "Figures: ") + ", ".join(
            f"[{f.split('/')[-1]}](../../results/{f})" for f in linked) + "."]
    return lines


RENDERERS = {"cifar10": render_cifar10, "generate": render_generate,
             "colorize": render_colorize, "tune": render_tune}


def render(name, records):
    """The Markdown block (without its markers) for the run `name`."""
    if name not in records:
        return [f"_No result for this run at the current code yet: "
                f"`python examples/results.py run --only={name}`._"]
    if name in RENDERERS:
        return RENDERERS[name](records[name])
    return render_experiment(name, records[name])


_BLOCK = re.compile(r"^<!-- results:(?P<name>[\w]+) -->\n(?P<body>.*?)^<!-- /results:(?P=name) -->$",
                    re.M | re.S)


def regenerate(text, records):
    """`text` with every results block rewritten from `records`."""
    def block(match):
        name = match["name"]
        if name not in RUNS:
            raise ValueError(f"results block names an unknown run {name!r}; runs: {list(RUNS)}")
        body = "\n".join(render(name, records))
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return _BLOCK.sub(block, text)


def stale_blocks(root=ROOT, results_dir=RESULTS_DIR):
    """`[(readme, run name)]` for every block that differs from what `regenerate` prints."""
    records = load_records(results_dir)
    stale = []
    for readme in READMES:
        with open(os.path.join(root, readme), encoding="utf-8") as f:
            text = f.read()
        fresh = regenerate(text, records)
        old = {m["name"]: m["body"] for m in _BLOCK.finditer(text)}
        new = {m["name"]: m["body"] for m in _BLOCK.finditer(fresh)}
        stale += [(readme, name) for name in old if old[name] != new[name]]
    return stale


def main(argv):
    if len(argv) != 2 or argv[1] not in ("run", "update", "check"):
        raise app.UsageError("usage: results.py run|update|check [flags]")
    command = argv[1]
    if command == "run":
        names = FLAGS.only or list(RUNS)
        unknown = [n for n in names if n not in RUNS]
        if unknown:
            raise app.UsageError(f"--only names unknown runs {unknown}; runs: {list(RUNS)}")
        os.makedirs(FLAGS.results_dir, exist_ok=True)
        commit = git_commit()[0]
        done = load_records(FLAGS.results_dir)
        for name in names:
            if FLAGS.resume and done.get(name, {}).get("commit") == commit:
                print(f"[results] {name}: recorded at this commit, skipped", flush=True)
                continue
            record = run_one(name, RUNS[name], FLAGS.results_dir, resume=FLAGS.resume)
            print(f"[results] {name}: {provenance(record)}", flush=True)
        command = "update"  # the READMEs follow the new JSON at once
    if command == "update":
        records = load_records(FLAGS.results_dir)
        for readme in READMES:
            path = os.path.join(ROOT, readme)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            fresh = regenerate(text, records)  # before opening for writing: a failed render
            with open(path, "w", encoding="utf-8") as f:  # must not leave an empty README
                f.write(fresh)
        print(f"[results] README blocks regenerated from {len(records)} records")
        return
    stale = stale_blocks(results_dir=FLAGS.results_dir)
    for readme, name in stale:
        print(f"{readme}: block '{name}' differs from `python examples/results.py update`")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    define_flags()
    app.run(main)
