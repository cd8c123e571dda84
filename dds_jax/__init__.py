"""dds-jax: Dual-Domain Image Synthesis using Segmentation-Guided GAN (Bazazian et al., CVPRW 2022)."""
__version__ = "0.1.0"
