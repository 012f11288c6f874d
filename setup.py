"""tfvq: a Keras 3 / TensorFlow model zoo for compressed image representations."""

import setuptools

# Versions measured to work together on Python 3.11 (see README). TensorFlow itself is an extra
# so that a CPU machine can take the 274 MB `tensorflow-cpu` wheel and a GPU machine the CUDA one.
INSTALL_REQUIRES = [
    "keras>=3.15.1,<3.16",
    "tensorflow-datasets>=4.9.10,<4.10",
    "tensorflow-probability>=0.25.0,<0.26",
    "keras-tuner>=1.4.8,<1.5",
    "absl-py>=2.1",
    "matplotlib>=3.8",
    "numpy>=1.26",
    # keras-tuner's BayesianOptimization imports it without declaring it.
    "scikit-learn>=1.4",
    # Imported by keras-tuner and by tfds builders but not declared by them.
    "tensorboard>=2.21,<2.22",
    "importlib_resources>=6",
]

EXTRAS = {
    # tf-keras (imported by tensorflow-probability) must be installed with --no-deps next to
    # tensorflow-cpu, or pip pulls the full `tensorflow` wheel back in: scripts/install.sh does it.
    "cpu": ["tensorflow-cpu>=2.21.0,<2.22"],
    "gpu": ["tensorflow[and-cuda]>=2.21.0,<2.22", "tf-keras>=2.21.0,<2.22"],
    "test": ["pytest>=8", "pytest-xdist>=3.5", "scikit-image>=0.24", "scipy>=1.11",
             "import-linter>=2.0,<3",
             # The Sonnet parity tests compare with it (it needs no TensorFlow of its own).
             "dm-sonnet==2.0.2",
             # tests/layers/test_backends.py under KERAS_BACKEND=jax and torch, measured with
             # Keras 3.15 here; torch 2.13.0 is the CPU build (a looser pin can take CUDA's).
             "jax[cpu]==0.10.2", "torch==2.13.0",
             # tests/benchmarks runs the quantizer benchmark's reference rows.
             "vector-quantize-pytorch==1.32.0"],
    # The references of benchmarks/, pinned: the version is part of every ratio published.
    "bench": ["dm-sonnet==2.0.2", "torch==2.13.0", "vector-quantize-pytorch==1.32.0"],
}

setuptools.setup(
    name="tfvq",
    version="0.1.0",
    description="AE, VAE and VQ-VAE image models for Keras 3 / TensorFlow, distributed and tunable.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["tfvq", "tfvq.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
