"""dds-jax: Dual-Domain Image Synthesis (Bazazian et al., CVPRW 2022) in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="dds-jax",
    version="0.1.0",
    description="Dual-Domain Image Synthesis using Segmentation-Guided GAN, in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["dds_jax", "dds_jax.*"]),
    include_package_data=True,
    package_data={"dds_jax": ["assets/**/*", "studio/static/*"]},
    install_requires=[
        "jax>=0.4.30",
        "jaxlib>=0.4.30",
        "flax>=0.8",
        "optax>=0.2",
        "orbax-checkpoint>=0.6",
        "numpy>=1.24",
        "pillow>=9",
        "absl-py>=1.4",
        "ml-collections>=0.1.1",
        "tqdm>=4.60",          # progress bars on long runs
        "matplotlib>=3.6",     # FID-per-iteration / sweep plots
        "imageio>=2.28",       # optimisation GIFs
        "scipy>=1.10",         # matrix square root for FID (as pytorch-fid)
    ],
    # Every program is also `python -m dds_jax.main` / `python -m dds_jax.cli.<name>` / `python -m dds_jax.studio`.
    entry_points={"console_scripts": [
        "dds-jax=dds_jax.main:run",
        "dds-sample=dds_jax.cli.sample:run",
        "dds-segment=dds_jax.cli.segment:run",
        "dds-train=dds_jax.cli.train:run",
        "dds-adapt=dds_jax.cli.adapt:run",
        "dds-evaluate=dds_jax.cli.evaluate:run",
        "dds-sweep=dds_jax.cli.sweep:run",
        "dds-benchmark=dds_jax.cli.benchmark:run",
        "dds-demo-models=dds_jax.cli.demo_models:run",
        "dds-render=dds_jax.cli.render:run",
        "dds-convert=dds_jax.cli.convert:run",
        "dds-studio=dds_jax.studio.server:run",
    ]},
    extras_require={
        # torch only to *read* .pt checkpoints; 2.13.0 is a CPU wheel. Never needed to run DDS.
        "convert": ["torch==2.13.0"],
        # pytest (+ pytest-xdist: the README's test command runs two workers); Playwright's Python driver
        # for the studio's browser test (it drives the system chromium, never downloads a browser).
        "dev": ["pytest>=7", "pytest-xdist>=3", "playwright>=1.40"],
        # python -m dds_jax.studio: the local web app (one static page, no JavaScript build).
        "studio": ["flask>=2.3"],
    },
)
