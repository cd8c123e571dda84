"""Flax models: StyleGAN2 generator, FewShotCNN segmenter, perceptual backbones, FID Inception."""
