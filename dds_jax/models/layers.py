"""Layers shared by the imported torchvision / pytorch-fid networks."""
import jax
from flax import linen as nn


class BatchNormInference(nn.Module):
    """``BatchNorm2d`` in eval mode (running statistics); parameters carry the torch names."""
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        weight = self.param("weight", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        mean = self.param("running_mean", nn.initializers.zeros, (c,))
        var = self.param("running_var", nn.initializers.ones, (c,))
        scale = weight * jax.lax.rsqrt(var + self.eps)
        return x * scale + (bias - mean * scale)
