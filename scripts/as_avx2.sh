#!/usr/bin/env bash
# Runs a command as on a CPU with AVX2 and no AVX-512, on a machine that has AVX-512: the
# libraries that pick their kernels at run time are capped at AVX2, so a test whose result
# depends on those kernels (a rounding, a NaN, a tie in an argmin) fails here as it would on
# such a CPU. TensorFlow's own kernels are compiled for one instruction set and are the same
# on both; its bfloat16 convolutions are the one thing the cap breaks (tests/conftest.py's
# `bfloat16_convolutions` skips the tests that need them, saying why).
# Usage: bash scripts/as_avx2.sh COMMAND [ARG ...]
#   e.g. bash scripts/as_avx2.sh bash scripts/test.sh -m "not slow"
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: bash scripts/as_avx2.sh COMMAND [ARG ...]" >&2
    exit 2
fi
export ONEDNN_MAX_CPU_ISA=AVX2                                     # TensorFlow's oneDNN kernels
export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_cpu_max_isa=AVX2"  # XLA, under TensorFlow and JAX
export ATEN_CPU_CAPABILITY=avx2                                    # torch
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"     # NumPy's dispatched loops
export OPENBLAS_CORETYPE=Haswell                                   # NumPy's matmuls
exec "$@"
