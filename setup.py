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
    extras_require={
        # torch only to *read* .pt checkpoints; 2.13.0 is a CPU wheel. Never needed to run DDS.
        "convert": ["torch==2.13.0"],
        # pytest; Playwright's Python driver for the studio's browser test (it drives the system chromium,
        # never downloads a browser).
        "dev": ["pytest>=7", "playwright>=1.40"],
        # python -m dds_jax.studio: the local web app (one static page, no JavaScript build).
        "studio": ["flask>=2.3"],
    },
)
