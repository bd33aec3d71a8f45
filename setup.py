"""Package metadata for pixel_models."""

from setuptools import find_packages, setup

setup(
    name="pixel_models",
    version="0.1.0",
    description=(
        "Autoregressive image models (PixelCNN, PixelRNN, Gated PixelCNN) "
        "for TensorFlow 2 / Keras 3: causal, exactly normalised, tested."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pixel_models", "pixel_models.*"]),
    py_modules=["main", "flags"],
    install_requires=[
        "tensorflow>=2.16,<3",
        "keras>=3.0,<4",
        "tensorflow-datasets>=4.9,<5",
        "numpy>=1.23",
        "absl-py>=1.0",
        "tensorboard>=2.16",
        "pillow>=9.0",
        # tensorflow-datasets imports it lazily when preparing a dataset.
        "importlib_resources>=5.0",
    ],
    extras_require={
        "test": [
            "pytest>=7.0",
            # The test command runs on up to 4 processes (pyproject addopts).
            "pytest-xdist>=3.2",  # --dist=worksteal
            "ruff>=0.4",
            # tests/test_notebooks.py executes the notebooks in a python3 kernel.
            "nbclient>=0.7",
            "nbformat>=5.7",
            "ipykernel>=6.0",
            "matplotlib>=3.6",
        ],
        # Running the notebooks/ tutorials (and regenerating them with nbformat).
        "notebooks": [
            "notebook>=7.0",
            "nbclient>=0.7",
            "ipykernel>=6.0",
            "matplotlib>=3.6",
            "nbformat>=5.7",
        ],
        # benchmarks/pixel_cnn_pp_benchmark.py compares PixelCNN++ with
        # tfp.distributions.PixelCNN, a tf_keras model under Keras 3.
        "benchmarks": [
            "tensorflow-probability>=0.25,<0.26",
            "tf-keras>=2.21,<2.22",
        ],
    },
    entry_points={"console_scripts": ["pixel-models=main:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
