"""StyleGAN2 training and few-shot cross-domain adaptation (paper Sec. 3.1; Ojha et al., CVPR 2021)."""
