"""Speed and peak memory of tfvq's quantizers against Sonnet 2 and vector-quantize-pytorch.

One step is a forward and backward pass in training mode: `loss = sum(outputs) + quantizer loss`,
gradients with respect to the inputs and (for the learned-codebook quantizers) the codebook; the
EMA quantizers also update their statistics. Every library starts from the same inputs and the
same codebook. Times are medians over `--runs` interleaved rounds (in each, every row runs an
untimed lead-in step and then `--burst` steps timed back to back, as a training loop runs them)
after `--warmup` steps of each. Peak memory is measured in a fresh process per row.

Also checks that `tfvq.layers.VectorQuantizer` reproduces `snt.nets.VectorQuantizer` (quantized
output, loss, perplexity, indices) on the same inputs and codebook.

`--backend` picks the Keras backend of the tfvq rows, one process per backend: on "jax" the
step is `jax.jit(jax.value_and_grad(layer.stateless_call ...))` with the statistics threaded
through, on "torch" an eager forward and `backward()`. The "fsq" quantizer times
`FiniteScalarQuantizer` against vector-quantize-pytorch's `FSQ` with the same levels.

    python benchmarks/quantizer.py --runs=30 --results=benchmarks/RESULTS.md
    python benchmarks/quantizer.py --backend=jax --quantizers=ema,fsq --libraries=tfvq,vqtorch
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

import report  # benchmarks/ is sys.path[0] when the script runs
from memory import peak_memory_mib

FLAGS = flags.FLAGS
flags.DEFINE_list("codebook_sizes", ["512", "8192"], "Codebook sizes K to time.")
flags.DEFINE_list("shape", ["128", "8", "8", "64"], "Input shape (batch, height, width, D).")
flags.DEFINE_list(
    "libraries", ["tfvq", "tfvq_xla", "sonnet", "vqtorch"],
    "Rows to time: tfvq (tf.function), tfvq_xla (tf.function(jit_compile=True)), sonnet, vqtorch.",
)
flags.DEFINE_list("quantizers", ["vq", "ema"],
                  "vq (learned codebook), ema, cosine, factorized, rotation (EMA codebooks with "
                  "distance='cosine', codebook_dim=8 or gradient='rotation'), fsq, lfq, rvq.")
flags.DEFINE_integer("lfq_bits", 10, "Bits (channels) of the lfq rows: 2^bits codes.")
flags.DEFINE_integer("rvq_stages", 4, "Stages of the rvq rows (EMA codebooks, SoundStream's).")
flags.DEFINE_integer("rvq_codes", 256, "Codes per stage of the rvq rows.")
flags.DEFINE_bool("return_info", False,
                  "tfvq rows call the layer with return_info=True (indices, distances, ...), as "
                  "Sonnet's always returns them.")
flags.DEFINE_enum("backend", "tensorflow", ["tensorflow", "jax", "torch"],
                  "Keras backend of the tfvq rows (tfvq_xla and sonnet need tensorflow).")
flags.DEFINE_list("fsq_levels", ["8", "5", "5", "5"],
                  "Levels of the fsq rows (Mentzer et al. 2023's for 2^10 codes); the inputs' "
                  "last axis is their number.")
flags.DEFINE_integer("warmup", 3, "Untimed steps of each row before timing.")
flags.DEFINE_integer("runs", 20, "Timed rounds; the table reports the median.")
flags.DEFINE_integer("threads", 2, "Intra-op threads for TensorFlow and torch alike.")
flags.DEFINE_float(
    "settle_ms", 50.0,
    "Pause after each timed step (untimed), so that one library's spinning worker threads "
    "(OpenMP in torch, Eigen in TensorFlow) do not steal a core from the next row's step.",
)
flags.DEFINE_integer(
    "burst", 3,
    "Steps timed back to back per row and round, after one untimed lead-in step; the row's "
    "time is the burst's over its steps. A training loop runs its steps back to back, and a "
    "lone step after the settle pause times how fast the machine wakes its idle cores too.",
)
flags.DEFINE_bool("lead_in", True,
                  "Run one untimed step before each row's burst (--nolead_in --burst=1: one "
                  "step timed after each pause, how the sections before 2026-12-07 were timed).")
flags.DEFINE_bool("memory", True, "Measure peak memory, one subprocess per row.")
flags.DEFINE_string("results", None,
                    "Markdown file whose '## Quantizer, <CPU>, <AVX kind> (issues 2, 16, 17)' "
                    "section to write.")
flags.DEFINE_string("memory_row", None, "Internal: 'library,quantizer,K' to measure in this process.")

COMMITMENT_COST = 0.25
DECAY = 0.99
LABELS = {
    "tfvq": "tfvq",
    "tfvq_xla": "tfvq (jit_compile)",
    "sonnet": "dm-sonnet",
    "vqtorch": "vector-quantize-pytorch",
    "bare": "bare search (matmul + argmin)",
}
# The quantizers searched over a (K, D) codebook at each --codebook_sizes K; the others run once.
SEARCHED = ("vq", "ema", "cosine", "factorized", "rotation")
# Options of the EMA variants, for tfvq's VectorQuantizerEMA and vector-quantize-pytorch's
# VectorQuantize alike.
VARIANTS = {
    "cosine": ({"distance": "cosine"}, {"use_cosine_sim": True}),
    "factorized": ({"codebook_dim": 8}, {"codebook_dim": 8}),
    "rotation": ({"gradient": "rotation"}, {"rotation_trick": True}),
}
NAMES = {"vq": "VectorQuantizer", "ema": "VectorQuantizerEMA", "fsq": "FiniteScalarQuantizer",
         "cosine": "VectorQuantizerEMA, cosine", "factorized": "VectorQuantizerEMA, codebook_dim=8",
         "rotation": "VectorQuantizerEMA, rotation trick", "lfq": "LookupFreeQuantizer",
         "rvq": "ResidualVectorQuantizer (EMA)"}


def section_title(backend="tensorflow"):
    """The RESULTS.md heading for this machine and backend (`report.machine_heading`)."""
    if backend != "tensorflow":
        return report.machine_heading(f"Quantizer on {backend}", "issue 18")
    return report.machine_heading("Quantizer", "issues 2, 16, 17")


NOTES = """\
- One step: training-mode forward and backward, `loss = sum(outputs) + quantizer loss`,
  gradients with respect to the inputs and any learned codebook; the EMA quantizers also
  update their statistics. Same inputs in every library, and the same codebook wherever the
  shapes allow (not the factorized or residual rows). With `--return_info` the tfvq rows also
  return indices, distances, counts and perplexity, as Sonnet's always does.
- Time: median of the interleaved rounds, after 3 warm-up steps. In each round every row runs
  one untimed lead-in step, then `--burst` steps (3 by default) timed back to back, whose mean
  is the round's time, then an untimed 50 ms pause so that one library's spinning worker
  threads do not slow the next row. The lead-in wakes the cores the pause let sleep: a step
  timed alone after the pause times the machine's wake-up too (`benchmarks/pause.py`), and on
  a 2-vCPU AMD EPYC VM the EMA layer's `jit_compile` row at K = 2048 read 1.00-1.35x the
  plain step that way in three runs beside vector-quantize-pytorch's rows, against 0.82-0.95x
  timed as here (the sections measured before 2026-12-07 timed one step after each pause:
  `--nolead_in --burst=1`). TensorFlow rows run in `tf.function`; the ratio is this row's
  time over tfvq's (`tf.function`, no XLA) on the same quantizer and K, so > 1 means tfvq is
  faster. The bare search row is the floor of any codebook search: one (N, D) x (D, K) matmul
  and the row argmin, forward only.
- Peak memory: in a fresh process per row, after one untimed step, the heap is trimmed
  (`malloc_trim`) and the peak-RSS counter reset; the figure is the peak RSS of 3 further
  steps minus the RSS before them: what a steady-state step allocates anew (the (N, K)
  distances, gradients, temporaries), not the libraries' code and weights, nor memory their
  allocators keep from step to step.
- vector-quantize-pytorch on (128, 64, D) inputs: `VectorQuantize(dim, codebook_size=K,
  decay=0.99, commitment_weight=0.25, rotation_trick=False)` (the VectorQuantizer row adds
  `learnable_codebook=True, ema_update=False`; cosine `use_cosine_sim=True`, factorized
  `codebook_dim=8`, rotation `rotation_trick=True`); `ResidualVQ(num_quantizers=4,
  codebook_size=256)` against tfvq's 4 EMA stages; `FSQ(levels)` on D = 4 inputs; `LFQ(dim=10,
  entropy_loss_weight=0.1, commitment_loss_weight=0.25)` on D = 10 inputs.
- tfvq searches the codebook 512 codes at a time (`_nearest`), so at K = 8192 no (8192, 8192)
  matrix is materialised for the search; the half norms ride in the score matmul as one more
  column. Under `jit_compile=True` the blocks run as one loop (`_looped_blocks`: unrolled, XLA
  compiled their matmuls 2x slower on AVX2), and each block's argmin reads groups of 16
  columns (`_row_argmin`), because XLA's CPU backend compiles a plain row argmin into scalar
  code. Which of XLA and plain
  TensorFlow is faster for a whole model depends on the CPU: `examples/cifar10.py
  --jit_compile=auto` times both once and caches the choice.
"""


def make_data(shape, num_embeddings, seed=0):
    """Inputs and a codebook (K, D) as float32 NumPy arrays; codes drawn like Sonnet's init."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    limit = np.sqrt(3.0 / shape[-1])
    codebook = rng.uniform(-limit, limit, size=(num_embeddings, shape[-1])).astype(np.float32)
    return x, codebook


def framework_of(library, backend="tensorflow"):
    """The framework whose threads a row uses: "tensorflow", "jax" or "torch"."""
    if library == "tfvq":
        return backend
    return "torch" if library == "vqtorch" else "tensorflow"


def configure_threads(threads, framework):
    """Intra- and inter-op threads of one framework; each may be set only once per process."""
    if framework == "jax":
        return  # XLA:CPU sizes its own pool (the machine's cores)
    if framework == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)


def tfvq_layer(quantizer, x, codebook, levels=None):
    """A built tfvq quantizer starting from `codebook` where it has one of that shape.

    FSQ and LFQ have no codebook (`levels`; LFQ's bits are the inputs' last axis); the
    factorized and residual ones start from their own initializers.
    """
    from tfvq import layers

    if quantizer == "fsq":
        layer = layers.FiniteScalarQuantizer(levels=levels)
    elif quantizer == "lfq":
        layer = layers.LookupFreeQuantizer(embedding_dim=x.shape[-1], entropy_weight=0.1,
                                           commitment_cost=COMMITMENT_COST)
    elif quantizer == "rvq":
        layer = layers.ResidualVectorQuantizer(
            num_quantizers=FLAGS.rvq_stages, num_embeddings=codebook.shape[0],
            embedding_dim=codebook.shape[1], commitment_cost=COMMITMENT_COST, quantizer="ema",
            decay=DECAY,
        )
    if quantizer in ("fsq", "lfq", "rvq"):
        layer.build(x.shape)
        return layer
    if quantizer in VARIANTS:
        layer = layers.VectorQuantizerEMA(codebook.shape[0], codebook.shape[1],
                                          commitment_cost=COMMITMENT_COST, decay=DECAY,
                                          **VARIANTS[quantizer][0])
        layer.build(x.shape)
        if quantizer != "factorized":
            layer.set_codebook(codebook)
        return layer
    VectorQuantizer, VectorQuantizerEMA = layers.VectorQuantizer, layers.VectorQuantizerEMA
    if quantizer == "vq":
        layer = VectorQuantizer(codebook.shape[0], codebook.shape[1], commitment_cost=COMMITMENT_COST)
    else:
        layer = VectorQuantizerEMA(
            codebook.shape[0], codebook.shape[1], commitment_cost=COMMITMENT_COST, decay=DECAY
        )
    layer.build(x.shape)
    layer.codebook.assign(codebook)
    if quantizer == "ema":
        layer.ema_dw.assign(codebook)
    return layer


def tfvq_step(quantizer, x, codebook, jit_compile=False, levels=None):
    """A zero-argument callable that runs one training step of a tfvq quantizer."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return tfvq_jax_step(quantizer, x, codebook, levels)
    if backend == "torch":
        return tfvq_torch_step(quantizer, x, codebook, levels)
    import tensorflow as tf

    layer = tfvq_layer(quantizer, x, codebook, levels)
    inputs = tf.constant(x)

    return_info = FLAGS.return_info

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True, return_info=return_info)
            if return_info:
                outputs = outputs["quantized"]
            loss = tf.reduce_sum(outputs) + tf.add_n(layer.losses)
        return loss, tape.gradient(loss, [inputs] + layer.trainable_weights)

    return lambda: step(inputs)


def tfvq_jax_step(quantizer, x, codebook, levels=None):
    """The step on JAX: one jitted function of (weights, statistics, inputs) -> gradients and
    the new statistics, as Keras' own JAX trainer runs a layer."""
    import jax
    import jax.numpy as jnp

    layer = tfvq_layer(quantizer, x, codebook, levels)
    trainable = [v.value for v in layer.trainable_variables]
    state = {"non_trainable": [v.value for v in layer.non_trainable_variables]}

    def loss_fn(trainable, non_trainable, inputs):
        outputs, non_trainable, losses = layer.stateless_call(
            trainable, non_trainable, inputs, training=True, return_losses=True
        )
        return jnp.sum(outputs) + sum(losses), non_trainable

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 2), has_aux=True))
    inputs = jnp.asarray(x)

    def step():
        (loss, state["non_trainable"]), grads = grad_fn(trainable, state["non_trainable"], inputs)
        return jax.block_until_ready(grads)

    return step


def tfvq_torch_step(quantizer, x, codebook, levels=None):
    """The step on torch: eager forward and `backward()`, as Keras' torch trainer runs it."""
    import torch

    layer = tfvq_layer(quantizer, x, codebook, levels)
    inputs = torch.from_numpy(x).requires_grad_()
    params = [v.value for v in layer.trainable_variables]

    def step():
        inputs.grad = None
        for p in params:
            p.grad = None
        outputs = layer(inputs, training=True)
        (outputs.sum() + sum(layer.losses)).backward()
        return inputs.grad

    return step


def sonnet_step(quantizer, x, codebook):
    """The same step with `snt.nets.VectorQuantizer(EMA)`; Sonnet's codebook is (D, K)."""
    import sonnet as snt
    import tensorflow as tf

    num_embeddings, dim = codebook.shape
    if quantizer == "vq":
        module = snt.nets.VectorQuantizer(dim, num_embeddings, COMMITMENT_COST)
    else:
        module = snt.nets.VectorQuantizerEMA(dim, num_embeddings, COMMITMENT_COST, DECAY)
    module(tf.constant(x[:1]), is_training=False)  # creates the variables
    module.embeddings.assign(codebook.T)
    trainable = [module.embeddings] if quantizer == "vq" else []  # the EMA codebook is not
    inputs = tf.constant(x)

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = module(inputs, is_training=True)
            loss = tf.reduce_sum(out["quantize"]) + out["loss"]
        return loss, tape.gradient(loss, [inputs] + trainable)

    return lambda: step(inputs)


def bare_search_step(x, codebook):
    """The floor of any nearest-code search: one (N, D) x (D, K) matmul and the row argmin,
    forward only, in `tf.function` (`argmin_k |e_k|^2 / 2 - x.e_k` is the nearest code)."""
    import tensorflow as tf

    flat = tf.constant(x.reshape(-1, x.shape[-1]))
    codes = tf.constant(codebook)
    half_norms = 0.5 * tf.reduce_sum(tf.square(codes), axis=1)

    @tf.function
    def step(flat):
        scores = half_norms[None, :] - tf.matmul(flat, codes, transpose_b=True)
        return tf.argmin(scores, axis=1, output_type=tf.int32)

    return lambda: step(flat)


def vqtorch_family_step(quantizer, x, codebook):
    """vector-quantize-pytorch's counterpart of a tfvq row without a Sonnet-style codebook
    copy: LFQ, ResidualVQ, and VectorQuantize with the VARIANTS options (EMA updates)."""
    import torch
    from vector_quantize_pytorch import LFQ, ResidualVQ, VectorQuantize

    dim = x.shape[-1]
    if quantizer == "lfq":
        module = LFQ(dim=dim, codebook_size=2**dim, entropy_loss_weight=0.1,
                     commitment_loss_weight=COMMITMENT_COST)
    elif quantizer == "rvq":
        module = ResidualVQ(dim=dim, num_quantizers=FLAGS.rvq_stages, codebook_size=codebook.shape[0],
                            decay=DECAY, commitment_weight=COMMITMENT_COST, rotation_trick=False)
    else:
        options = {"rotation_trick": False, **VARIANTS[quantizer][1]}
        module = VectorQuantize(dim=dim, codebook_size=codebook.shape[0], decay=DECAY,
                                commitment_weight=COMMITMENT_COST, **options)
        if quantizer != "factorized":
            with torch.no_grad():
                start = torch.from_numpy(codebook)[None]
                if quantizer == "cosine":
                    start = torch.nn.functional.normalize(start, dim=-1)
                module._codebook.embed.copy_(start)
    return torch_module_step(module, x)


def torch_module_step(module, x):
    """One training step of a vector-quantize-pytorch module on `x` as (B, H*W, D):
    `quantized, _, loss = module(inputs)`, then `backward()` of `sum(quantized) + sum(loss)`
    (residual VQ returns one loss per stage)."""
    import torch

    module.train()
    inputs = torch.from_numpy(x.reshape(x.shape[0], -1, x.shape[-1])).requires_grad_()
    params = [p for p in module.parameters() if p.requires_grad]

    def step():
        inputs.grad = None
        for p in params:
            p.grad = None
        quantized, _, loss = module(inputs)
        (quantized.sum() + loss.sum()).backward()
        return inputs.grad

    return step


def vqtorch_fsq_step(x, levels):
    """The FSQ step with vector-quantize-pytorch's `FSQ` (no projection: dim = len(levels))."""
    import torch
    from vector_quantize_pytorch import FSQ

    module = FSQ(levels=list(levels))
    inputs = torch.from_numpy(x.reshape(x.shape[0], -1, x.shape[-1])).requires_grad_()

    def step():
        inputs.grad = None
        quantized, _ = module(inputs)
        quantized.sum().backward()
        return inputs.grad

    return step


def vqtorch_step(quantizer, x, codebook, levels=None):
    """The same step with vector-quantize-pytorch's `VectorQuantize` on (B, H*W, D).

    The "vq" row learns the codebook by gradient (`learnable_codebook=True, ema_update=False`);
    the "ema" row uses the library's default EMA update. Both use the plain straight-through
    estimator (`rotation_trick=False`) like tfvq and Sonnet.
    """
    if quantizer == "fsq":
        return vqtorch_fsq_step(x, levels)
    if quantizer not in ("vq", "ema"):
        return vqtorch_family_step(quantizer, x, codebook)
    import torch
    from vector_quantize_pytorch import VectorQuantize

    num_embeddings, dim = codebook.shape
    options = {"learnable_codebook": True, "ema_update": False} if quantizer == "vq" else {}
    module = VectorQuantize(
        dim=dim, codebook_size=num_embeddings, decay=DECAY, commitment_weight=COMMITMENT_COST,
        rotation_trick=False, **options,
    )
    with torch.no_grad():
        module._codebook.embed.copy_(torch.from_numpy(codebook)[None])
        module._codebook.embed_avg.copy_(torch.from_numpy(codebook)[None])
    return torch_module_step(module, x)


def make_step(library, quantizer, x, codebook, levels=None):
    if library == "tfvq":
        return tfvq_step(quantizer, x, codebook, levels=levels)
    if library == "tfvq_xla":
        return tfvq_step(quantizer, x, codebook, jit_compile=True, levels=levels)
    if library == "sonnet":
        if quantizer not in ("vq", "ema"):
            return None  # Sonnet has only the 2017 pair
        return sonnet_step(quantizer, x, codebook)
    if library == "bare":
        if quantizer != "vq":
            return None  # one floor per codebook size, on the plain VQ group
        return bare_search_step(x, codebook)
    if library == "vqtorch":
        return vqtorch_step(quantizer, x, codebook, levels)
    raise ValueError(f"unknown library {library!r}; expected one of {sorted(LABELS)}")


def time_interleaved(steps, warmup, runs, settle=0.05, burst=1, lead_in=True):
    """Median seconds per call of each callable, calling them in turn `runs` times.

    In each round a row runs one untimed lead-in call (with `lead_in`), then `burst` calls
    timed together (the time per call is their total over `burst`), then `settle` seconds of
    sleep, untimed: the pause lets one library's spinning worker threads stop before the next
    row, and the lead-in wakes the cores the pause let sleep, so that the burst times steps as
    a training loop runs them, back to back. A call timed alone right after the pause times
    the machine's wake-up too, and unevenly (`benchmarks/pause.py`).
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            if lead_in:
                step()
            start = time.perf_counter()
            for _ in range(burst):
                step()
            times[name].append((time.perf_counter() - start) / burst)
            time.sleep(settle)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_memory_row(library, quantizer, num_embeddings, shape, threads, backend="tensorflow",
                       levels=None):
    """Peak memory of one row, measured in a fresh Python process (MiB)."""
    command = [
        sys.executable, os.path.abspath(__file__), f"--memory_row={library},{quantizer},{num_embeddings}",
        f"--shape={','.join(map(str, shape))}", f"--threads={threads}", f"--backend={backend}",
    ]
    if levels:
        command.append(f"--fsq_levels={','.join(map(str, levels))}")
    command += [f"--rvq_stages={FLAGS.rvq_stages}", f"--return_info={FLAGS.return_info}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def check_against_sonnet(num_embeddings, shape, seed=1):
    """Max differences between tfvq's and Sonnet's VectorQuantizer on the same data."""
    import numpy as np
    import sonnet as snt
    import tensorflow as tf

    from tfvq.layers import VectorQuantizer

    x, codebook = make_data(shape, num_embeddings, seed)
    ours = VectorQuantizer(num_embeddings, shape[-1], commitment_cost=COMMITMENT_COST)
    ours.build(x.shape)
    ours.codebook.assign(codebook)
    info = ours(x, training=True, return_info=True)
    theirs = snt.nets.VectorQuantizer(shape[-1], num_embeddings, COMMITMENT_COST)
    theirs(tf.constant(x[:1]), is_training=False)
    theirs.embeddings.assign(codebook.T)
    out = theirs(tf.constant(x), is_training=True)
    diff = lambda a, b: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))  # noqa: E731
    return {
        "K": num_embeddings,
        "quantized": diff(info["quantized"], out["quantize"]),
        "loss": diff(info["loss"], out["loss"]),
        "perplexity": diff(info["perplexity"], out["perplexity"]),
        "distances": diff(np.reshape(info["distances"], (-1, num_embeddings)), out["distances"]),
        "indices differing": int(np.sum(np.asarray(info["indices"]).ravel() != np.asarray(out["encoding_indices"]).ravel())),
        "vectors": int(np.prod(shape[:-1])),
    }


def run(codebook_sizes, shape, libraries, quantizers, warmup, runs, threads, memory, settle=0.05,
        backend="tensorflow", levels=(8, 5, 5, 5), burst=1, lead_in=True):
    """Times every (library, quantizer, K) row; returns a list of row dicts.

    The fsq rows run once, on inputs whose last axis is `len(levels)`, with K = prod(levels).
    """
    import math

    for framework in {framework_of(lib, backend) for lib in libraries}:
        configure_threads(threads, framework)
    rows = []
    searched = [q for q in quantizers if q in SEARCHED]
    groups = [(k, searched, tuple(shape)) for k in codebook_sizes if searched]
    if "rvq" in quantizers:
        groups.append((FLAGS.rvq_codes, ["rvq"], tuple(shape)))
    if "fsq" in quantizers:
        groups.append((math.prod(levels), ["fsq"], tuple(shape[:-1]) + (len(levels),)))
    if "lfq" in quantizers:
        groups.append((2**FLAGS.lfq_bits, ["lfq"], tuple(shape[:-1]) + (FLAGS.lfq_bits,)))
    for num_embeddings, group, group_shape in groups:
        x, codebook = make_data(group_shape, num_embeddings)
        steps = {}
        for quantizer in group:
            for library in libraries:
                step = make_step(library, quantizer, x, codebook, levels)
                if step is not None:
                    steps[(library, quantizer)] = step
        times = time_interleaved(steps, warmup, runs, settle, burst, lead_in)
        for quantizer in group:
            base = times.get(("tfvq", quantizer))
            for library in libraries:
                if (library, quantizer) not in times:
                    continue
                seconds = times[(library, quantizer)]
                rows.append({
                    "library": library,
                    "quantizer": quantizer,
                    "K": num_embeddings,
                    "ms": 1e3 * seconds,
                    "ratio": seconds / base if base else None,
                    "peak_mib": measure_memory_row(library, quantizer, num_embeddings, group_shape,
                                                   threads, backend, levels)
                    if memory else None,
                })
        del steps
    return rows


def format_table(rows, backend="tensorflow"):
    labels = {**LABELS, "tfvq": f"tfvq ({backend})" if backend != "tensorflow" else "tfvq"}
    lines = [
        "| library | quantizer | K | time (ms) | ratio (this / tfvq) | peak memory (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        memory = "" if row["peak_mib"] is None else report.format_mib(row["peak_mib"])
        lines.append(
            f"| {labels[row['library']]} | {NAMES[row['quantizer']]} | {row['K']} | "
            f"{row['ms']:.2f} | {ratio} | {memory} |"
        )
    return "\n".join(lines)


def format_sonnet_check(checks):
    lines = [
        "| K | max abs diff quantized | loss | perplexity | distances | indices differing |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in checks:
        lines.append(
            f"| {c['K']} | {c['quantized']:.3g} | {c['loss']:.3g} | {c['perplexity']:.3g} | "
            f"{c['distances']:.3g} | {c['indices differing']} of {c['vectors']} |"
        )
    return "\n".join(lines)


# The distributions behind each library's rows, whose installed versions a section records.
_TENSORFLOW = ("tensorflow-cpu", "tensorflow", "keras")  # -cpu here, the plain one on GPUs
DISTRIBUTIONS = {"tfvq": _TENSORFLOW, "tfvq_xla": _TENSORFLOW, "bare": _TENSORFLOW,
                 "sonnet": ("dm-sonnet",),
                 "vqtorch": ("vector-quantize-pytorch", "torch")}


def library_versions(libraries):
    """"name version" of each installed distribution behind `libraries`."""
    from tfvq.utils.machine import installed_versions

    names = dict.fromkeys(name for lib in libraries for name in DISTRIBUTIONS.get(lib, ()))
    return [f"{name} {version}" for name, version in installed_versions(names).items()]


def main(argv):
    del argv
    # Before anything imports Keras, which reads the backend once.
    os.environ["KERAS_BACKEND"] = FLAGS.backend
    shape = tuple(int(s) for s in FLAGS.shape)
    levels = tuple(int(level) for level in FLAGS.fsq_levels)
    libraries = FLAGS.libraries
    if FLAGS.backend != "tensorflow":
        tensorflow_only = [lib for lib in libraries if lib in ("tfvq_xla", "sonnet")]
        if tensorflow_only and FLAGS["libraries"].present:
            raise ValueError(f"--libraries {tensorflow_only} need --backend=tensorflow; got "
                             f"--backend={FLAGS.backend}")
        libraries = [lib for lib in libraries if lib not in tensorflow_only]
    if FLAGS.memory_row:
        library, quantizer, num_embeddings = FLAGS.memory_row.split(",")
        configure_threads(FLAGS.threads, framework_of(library, FLAGS.backend))
        x, codebook = make_data(shape, int(num_embeddings))
        step = make_step(library, quantizer, x, codebook, levels)
        print(json.dumps({"peak_mib": peak_memory_mib(step)}))
        return
    sizes = [int(k) for k in FLAGS.codebook_sizes]
    rows = run(sizes, shape, libraries, FLAGS.quantizers, FLAGS.warmup, FLAGS.runs,
               FLAGS.threads, FLAGS.memory, FLAGS.settle_ms / 1e3, FLAGS.backend, levels,
               FLAGS.burst, FLAGS.lead_in)
    table = format_table(rows, FLAGS.backend)
    searched = [q for q in FLAGS.quantizers if q in ("vq", "ema")]
    checks = ([check_against_sonnet(k, shape) for k in sizes]
              if "sonnet" in libraries and searched else [])
    print(table)
    if checks:
        print("\ntfvq VectorQuantizer vs snt.nets.VectorQuantizer, same inputs and codebook:")
        print(format_sonnet_check(checks))
    if FLAGS.results:
        command = "python " + " ".join(["benchmarks/quantizer.py"] + sys.argv[1:])
        section = section_title(FLAGS.backend)
        text = "\n".join([
            section, "",
            f"`{command}` on {datetime.date.today().isoformat()}, {report.cpu_model()}, CPU only, "
            f"{FLAGS.threads} threads "
            f"for TensorFlow and torch; inputs {shape}, commitment cost {COMMITMENT_COST}, "
            f"decay {DECAY}; {', '.join(library_versions(libraries))}.", "",
            table, "",
            NOTES,
            "tfvq `VectorQuantizer` against `snt.nets.VectorQuantizer` on the same inputs and codebook:",
            "", format_sonnet_check(checks) if checks else "(not run)", "",
        ])
        report.write_results(FLAGS.results, text, section)


if __name__ == "__main__":
    app.run(main)
