"""Data-parallel scaling on paper: all-reduce volume per step against the compute time.

Nothing runs on several devices here (this machine has one CPU and no GPU). The script counts
what `MirroredStrategy` / `MultiWorkerMirroredStrategy` all-reduce per training step of a
VQ-VAE: every trainable weight's gradient (float32) and, for the EMA quantizer, its per-code
counts and summed vectors (`cross_replica_sum` in `VectorQuantizerEMA._update_codebook`, which
sits on the forward path). It then models a ring all-reduce,

    t = 2 (n - 1) / n * bytes / bus_bandwidth + 2 (n - 1) * latency,

flat within one machine and hierarchical across machines (reduce-scatter inside each machine
over NVLink or PCIe, the machines' ring over the network on 1/8 of the data per GPU, then an
all-gather inside), with no overlap of communication and computation (Keras' `fit` all-reduces
gradients after the backward pass). Weak scaling: every GPU keeps the per-device batch, so
efficiency = t_step / (t_step + t_allreduce).

    python benchmarks/multi_device.py --cpu_step_ms=230 --gpu_speedup=50 \
        --results=benchmarks/RESULTS.md
"""

import time

from absl import app, flags

# A sibling in benchmarks/, which Python puts first on the path when this script runs.
from report import publish

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["notebook:32:128:32:230", "paper:128:256:256:5000"],
                  "name:batch:hidden:residual:measured CPU step ms (from train_step.py).")
flags.DEFINE_list("gpu_speedups", ["20", "50", "100"], "Assumed speed-up of one step on a GPU.")
flags.DEFINE_integer("num_embeddings", 512, "K.")
flags.DEFINE_string("results", None, "Markdown file to append the table to.")

# (name, bus bandwidth in GB/s per GPU for the all-reduce, latency per ring hop in seconds)
LINKS = {
    "NVLink (V100 DGX-1, NCCL bus bw)": (130.0, 5e-6),
    "PCIe 3.0 x16 through the host": (10.0, 10e-6),
    "25 Gb/s Ethernet (TCP)": (25 / 8 * 0.9, 30e-6),
    "100 Gb/s Ethernet / RoCE": (100 / 8 * 0.9, 10e-6),
}


def allreduce_seconds(num_bytes, n, bandwidth_gbs, latency):
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * num_bytes / (bandwidth_gbs * 1e9) + 2 * (n - 1) * latency


def hierarchical_seconds(num_bytes, machines, gpus, intra, inter):
    """Reduce-scatter + all-gather inside each machine, ring over machines on 1/gpus shards.

    The machines' ring runs `gpus` shards at once through one NIC, so the NIC carries the
    whole buffer: its term uses num_bytes, not num_bytes / gpus.
    """
    inside = allreduce_seconds(num_bytes, gpus, *intra)
    return inside + allreduce_seconds(num_bytes, machines, *inter)


def volume(batch, hidden, residual, num_embeddings):
    import keras

    import tfvq

    keras.utils.set_random_seed(0)
    model = tfvq.VQVAE((32, 32, 3), num_embeddings=num_embeddings, embedding_dim=64,
                       hidden_channels=hidden, residual_channels=residual, quantizer="ema")
    grads = sum(int(v.numpy().size) for v in model.trainable_variables)
    stats = num_embeddings * (1 + 64)  # counts (K) and summed vectors (K, D), per step
    return grads, stats


def main(argv):
    del argv
    lines = [
        f"`python benchmarks/multi_device.py --configs={','.join(FLAGS.configs)} "
        f"--gpu_speedups={','.join(FLAGS.gpu_speedups)}` — {time.strftime('%Y-%m-%d')}",
        "",
        "| model (per-GPU batch) | all-reduce floats / step (grads + EMA stats) | MB | "
        "GPU step ms (CPU ms / speed-up) | 8 GPUs NVLink | 8 GPUs PCIe | 4x8 GPUs, 25 GbE | "
        "4x8 GPUs, 100 GbE | what dominates at 4x8 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    nvlink, pcie = LINKS["NVLink (V100 DGX-1, NCCL bus bw)"], LINKS["PCIe 3.0 x16 through the host"]
    e25, e100 = LINKS["25 Gb/s Ethernet (TCP)"], LINKS["100 Gb/s Ethernet / RoCE"]
    for config in FLAGS.configs:
        name, batch, hidden, residual, cpu_ms = config.split(":")
        grads, stats = volume(int(batch), int(hidden), int(residual), FLAGS.num_embeddings)
        num_bytes = 4 * (grads + stats)
        for speedup in FLAGS.gpu_speedups:
            step = float(cpu_ms) / 1e3 / float(speedup)
            # The EMA statistics are all-reduced on their own, inside the forward pass: one
            # more latency-bound collective on the critical path.
            comm = {
                "nvlink": allreduce_seconds(num_bytes, 8, *nvlink) + 14 * nvlink[1],
                "pcie": allreduce_seconds(num_bytes, 8, *pcie) + 14 * pcie[1],
                "e25": hierarchical_seconds(num_bytes, 4, 8, nvlink, e25) + 6 * e25[1] + 14 * nvlink[1],
                "e100": hierarchical_seconds(num_bytes, 4, 8, nvlink, e100) + 6 * e100[1] + 14 * nvlink[1],
            }
            eff = {k: step / (step + t) for k, t in comm.items()}
            bw_e25 = 2 * 3 / 4 * num_bytes / (e25[0] * 1e9)
            dominant = ("network bandwidth" if bw_e25 > 12 * e25[1] else "network latency")
            lines.append(
                f"| {name} ({batch}), GPU {speedup}x | {grads:,} + {stats:,} | "
                f"{num_bytes / 1e6:.2f} | {step * 1e3:.1f} | {eff['nvlink']:.0%} | "
                f"{eff['pcie']:.0%} | {eff['e25']:.0%} | {eff['e100']:.0%} | "
                f"{dominant} (25 GbE all-reduce {comm['e25'] * 1e3:.2f} ms vs step "
                f"{step * 1e3:.1f} ms) |")
    lines += ["", "Assumed links (bus bandwidth per GPU, latency per ring hop): " + "; ".join(
        f"{k}: {bw:.1f} GB/s, {lat * 1e6:.0f} us" for k, (bw, lat) in LINKS.items()) + "."]
    text = "\n".join(lines)
    publish(text, FLAGS.results)


if __name__ == "__main__":
    app.run(main)
