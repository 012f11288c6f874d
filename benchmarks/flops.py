"""Analytic FLOPs of the default VQ-VAE (stride-2 conv stacks of `tfvq.layers`).

Convention: 1 multiply-accumulate = 2 FLOPs; a training step is 3 x the forward FLOPs of the
convolutions (forward, gradient w.r.t. inputs, gradient w.r.t. weights) plus 1 x the
quantizer's distance matmul (argmin passes no gradient, so that matmul has no backward).
Elementwise ops, biases, ReLUs, losses and the optimizer are left out (< 1%: see train_step.py).
"""


def model_flops(batch, hidden=128, residual=32, num_residual_layers=2, num_embeddings=512,
                embedding_dim=64, image=32, channels=3):
    """Forward FLOPs per layer group of one batch, as a dict (``total`` included).

    Example:
    >>> round(model_flops(32)["total"] / 1e9, 2)  # notebook model, batch 32
    2.92
    """
    h, r, d, k = hidden, residual, embedding_dim, num_embeddings
    s1, s2 = image // 2, image // 4  # 16 and 8 for CIFAR-10
    half = max(h // 2, 1)
    res = num_residual_layers * s2 * s2 * (9 * h * r + r * h)
    macs = {
        "encoder": s1 * s1 * 16 * channels * half + s2 * s2 * 16 * half * h
        + s2 * s2 * 9 * h * h + res + s2 * s2 * h * d,
        "quantizer": s2 * s2 * d * k,
        "decoder": s2 * s2 * 9 * d * h + res
        # Transposed 4x4 stride-2 convs: every input pixel meets all 16 taps.
        + s2 * s2 * 16 * h * half + s1 * s1 * 16 * half * channels,
    }
    flops = {name: 2 * batch * m for name, m in macs.items()}
    flops["total"] = sum(flops.values())
    return flops


def train_step_flops(batch, **kwargs):
    """FLOPs of one training step: 3 x the convolutions + 1 x the quantizer's distances."""
    f = model_flops(batch, **kwargs)
    return 3 * (f["encoder"] + f["decoder"]) + f["quantizer"]
