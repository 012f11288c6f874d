"""Turns the experiments' results.json files into the Markdown tables of README.md.

    python examples/experiments/summarize.py --runs_dir=runs/experiments

Reads <runs_dir>/<experiment>/results.json for every experiment that has run and prints one
table per experiment, each followed by the command, wall time and CPU time that produced it
(also written to <runs_dir>/summary.md). CPU time comes from the JSON when the script recorded
it, else from --cpu_times (experiment=seconds pairs, e.g. from `/usr/bin/time`).
"""

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("runs_dir", "runs/experiments", "Folder holding one sub-folder per experiment.")
flags.DEFINE_list("cpu_times", [],
                  "experiment=seconds pairs for runs that did not record CPU time.")

ORDER = ("compare_models", "vae_latents", "ae_design", "augmentation", "colorization",
         "preprocessing", "faces_vae")


def _f(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def compare_models(r):
    rows = []
    for name, m in r["models"].items():
        rows.append([name, m["latent_budget"]["latent"], _f(m["latent_budget"]["nominal_bits"], 0),
                     _f(m["latent_budget"].get("measured_rate_bits"), 0), _f(m["test_mse"], 4),
                     _f(m["test_psnr"], 2), _f(m["test_ssim"], 3), _f(m.get("bits_per_dim"), 2),
                     _f(m.get("bits_per_dim_iwae"), 2)])
    paper = ", ".join(f"{k} {v}" for k, v in r["paper_bits_per_dim"].items())
    return _table(["model", "latent", "budget bits", "measured rate bits", "test MSE",
                   "PSNR dB", "SSIM", "bits/dim (ELBO / VQ+prior)", "bits/dim IWAE"], rows) + [
        "", f"Paper ladder (much longer training): {paper} bits/dim. {r['latent_budget_note']}"]


def vae_latents(r):
    rows = [[name, m["latent_dim"], m["beta"], m["steps"], _f(m["knn_accuracy"], 3),
             _f(m["test_mse"], 4), _f(m["test_psnr"], 2), _f(m["test_kl_nats"], 1),
             _f(m.get("final_train_loss"), 1)]
            for name, m in r["runs"].items()]
    lines = _table(["run", "latent", "beta", "steps", "5-NN acc.", "test MSE", "PSNR dB",
                    "KL nats", "final train loss"], rows) + [
        "", f"Class separation: {r['class_separation']}."]
    # Which of the many PNGs are the per-dataset summaries (older results.json have none).
    for suffix, what in (("_latents_2d.png", "2-D latent scatters side by side"),
                         ("_loss_curves.png", "Training curves of every variant")):
        shown = [name for name in r["figures"] if name.endswith(suffix)]
        if shown:
            lines.append(f"{what}: {', '.join(shown)}.")
    return lines


def ae_design(r):
    rows = [[name, m["loss"], m["downsample"], "x".join(map(str, m["latent_shape"])),
             m["latent_size"], _f(m["latent_size_over_pixels"], 2), _f(m["test_mse"], 4),
             _f(m["test_bce"], 4), _f(m["test_psnr"], 2), _f(m["test_ssim"], 3)]
            for name, m in r["variants"].items()]
    return _table(["variant", "loss", "downsample", "latent map", "latent size",
                   "latent / pixels", "test MSE", "test BCE", "PSNR dB", "SSIM"], rows)


def augmentation(r):
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    def interval(i):
        return "n/a" if i["low"] is None else f"[{pct(i['low'])}, {pct(i['high'])}]"

    lines = [f"Test accuracy in %; {r['interval']}. Claim: \"{r['claim']}\".", ""]
    for labels, b in r["budgets"].items():
        lines += [f"**{labels} labels** ({b['labels_per_class']} per class, seeds "
                  f"{', '.join(map(str, b['seeds']))}):", ""]
        rows = []
        for name, c in b["conditions"].items():
            acc, diff = c["test_accuracy"], c.get("difference_vs_real")
            rows.append([name, c["train_examples"], pct(acc["mean"]), interval(acc),
                         " / ".join(pct(v) for v in c["test_accuracy_per_seed"]),
                         "—" if diff is None else f"{pct(diff['mean'])} {interval(diff)}",
                         c.get("verdict", "—")])
        lines += _table(["condition", "images", "mean accuracy", "95 % interval", "per seed",
                         "minus real (95 % interval)", "verdict"], rows) + [""]
        for name, i in b["real_classifier_accuracy_on_synthetic"].items():
            lines.append(f"- {name}: {r['augmenters'][name]}; the real-data classifier labels "
                         f"{pct(i['mean'])} % {interval(i)} of its images as their class.")
        lines.append("")
    return lines[:-1]


def colorization(r):
    rows = [[name, _f(m["psnr"], 2), _f(m["ab_error"], 2), _f(m["ab_auc"], 3)]
            for name, m in r["table"].items()]
    return _table(["model", "PSNR dB", "mean ab error", "ab AuC"], rows)


def preprocessing(r):
    kept = [n for n, v in r["images"].items() if v["kept"]]
    dropped = [f"{n} ({v['shape'][0]}x{v['shape'][1]})" for n, v in r["images"].items()
               if not v["kept"]]
    return [f"{r['num_images']} skimage photographs; kept {len(kept)}, dropped by the "
            f"min-size {r['settings']['min_size']} filter: {', '.join(dropped) or 'none'}; "
            f"crops {r['crop_shape']}; standardised per-channel mean "
            f"{[round(v, 2) for v in r['standardized_mean']]}, std "
            f"{[round(v, 2) for v in r['standardized_std']]}; largest round-trip error "
            f"{r['roundtrip_max_abs_error']:.2g}."]


def faces_vae(r):
    knn = r["knn_accuracy"]
    rows = [["test", _f(r["test_bce_nats_per_pixel"], 4), _f(r["test_mse"], 4),
             _f(r["test_psnr"], 2), _f(r["test_ssim"], 3), _f(r["test_kl_nats"], 1),
             _f(r["test_elbo_nats"], 1)]]
    lines = _table(["split", "BCE nats/pixel", "MSE", "PSNR dB", "SSIM", "KL nats",
                    "ELBO nats"], rows)
    separation = ", ".join(f"{name} {_f(value, 3)}" for name, value in knn.items())
    return lines + ["", f"{r['class_separation']}: {separation}. Train BCE "
                        f"{_f(r['train_bce_nats_per_pixel'], 4)} nats/pixel."]


def main(argv):
    del argv
    cpu_times = dict(item.split("=", 1) for item in FLAGS.cpu_times)
    lines = []
    for name in ORDER:
        path = os.path.join(FLAGS.runs_dir, name, "results.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        cpu = r.get("cpu_time_s", cpu_times.get(name))
        machine = r["machine"]
        lines += [f"### {r['experiment']}", ""] + globals()[name](r) + [
            "",
            f"`{r['command']}` — wall time {r['wall_time_s']:.0f} s"
            + (f", CPU time {float(cpu):.0f} s" if cpu else "")
            + f"; {machine['cpu_count']} CPUs, load average {machine['load_average_start']} at "
              f"start; TF {machine['tensorflow']}, Keras {machine['keras']}. "
            + "Figures: " + ", ".join(r["figures"]) + ".",
            "",
        ]
    text = "\n".join(lines)
    with open(os.path.join(FLAGS.runs_dir, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
