"""The perceptual features F_j of Eq. 3: a backbone from the registry, or the generator's own features.

``backbone="generator"`` (paper Appendix D) uses the StyleGAN2 StyledConv outputs as F_j: the features of
a synthesised image come from the same forward pass that renders it, the features of an input image
from the forward pass that generated it (so that backbone needs the inputs' latents).
"""
from typing import List

GENERATOR = "generator"


def backbone_features(name: str, params, images, imagenet_normalize: bool = False, precision=None) -> List:
    """NHWC images -> list of NHWC feature maps of the registry backbone ``name``."""
    if name == GENERATOR:
        raise ValueError("the 'generator' backbone has no image -> features function; its features come "
                         "from the generator forward pass")
    from dds_jax.models import backbones
    kw = {} if precision is None else {"precision": precision}
    return backbones.extract(name, params, images, imagenet_normalize=imagenet_normalize, **kw)


def check_backbone(name: str) -> None:
    """Raise a clear error for an unknown backbone name."""
    if name == GENERATOR:
        return
    from dds_jax.models import backbones
    backbones.get_backbone(name)
