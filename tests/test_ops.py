"""``ops.conv2d``: the convolution with a hand-written input gradient (issue 15's CPU speed-up).

It must be the same function as ``lax.conv_general_dilated`` -- values, gradients with respect to input and
kernel, and second-order gradients (R1 / path-length regularisation differentiate through it) -- and its
input gradient inside a loop body must compile to an ordinary HWIO convolution, not XLA:CPU's slow
transposed-kernel form. Tolerances: float32 at HIGHEST precision, 2e-5 relative to the value's scale.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dds_jax import ops

pytestmark = pytest.mark.optimized     # runs faster compiled with the full XLA pipeline (conftest.py)

HIGHEST = lax.Precision.HIGHEST
# (kernel, padding): the generator's 3x3 / 1x1 'same' convolutions, the polyphase up-sampling sub-kernels
# (2x2 padded 1, and the unpadded case), asymmetric padding, and a pad > k - 1 (falls back to lax).
CASES = [(3, ((1, 1), (1, 1))), (1, ((0, 0), (0, 0))), (2, ((1, 1), (1, 1))), (2, ((0, 0), (0, 0))),
         (3, ((2, 0), (0, 1))), (1, ((1, 1), (1, 1)))]
IDS = [f"k{k}-pad{p[0][0]}{p[0][1]}{p[1][0]}{p[1][1]}" for k, p in CASES]


def _reference(x, w, padding):
    return lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=HIGHEST)


def _inputs(k, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, 3, 4)), jnp.float32)
    return x, w


def _close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 2e-5 * max(1.0, float(np.max(np.abs(want))))


@pytest.mark.parametrize("k,padding", CASES, ids=IDS)
def test_conv2d_values_and_gradients_match_lax(k, padding):
    x, w = _inputs(k)
    ours = lambda x, w: ops.conv2d(x, w, padding, HIGHEST)
    ref = lambda x, w: _reference(x, w, padding)
    _close(ours(x, w), ref(x, w))

    def loss(f):
        return lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    gx, gw = jax.grad(loss(ours), argnums=(0, 1))(x, w)
    rx, rw = jax.grad(loss(ref), argnums=(0, 1))(x, w)
    _close(gx, rx)
    _close(gw, rw)

    def input_grad_norm(f):    # an R1-style penalty: the kernel gradient of an input-gradient norm
        return lambda w: jnp.sum(jax.grad(loss(f))(x, w) ** 2)
    _close(jax.grad(input_grad_norm(ours))(w), jax.grad(input_grad_norm(ref))(w))


def test_flax_conv_uses_conv2d_and_matches_lax():
    import flax.linen as nn
    x, _ = _inputs(3)
    plain = nn.Conv(5, (3, 3), padding=((1, 1), (1, 1)), precision=HIGHEST)
    routed = nn.Conv(5, (3, 3), padding=((1, 1), (1, 1)), precision=HIGHEST,
                     conv_general_dilated=ops.flax_conv_general_dilated)
    params = plain.init(jax.random.PRNGKey(0), x)
    _close(routed.apply(params, x), plain.apply(params, x))
    g = lambda m: jax.grad(lambda x: jnp.sum(jnp.sin(m.apply(params, x))))(x)
    _close(g(routed), g(plain))
    strided = nn.Conv(5, (3, 3), strides=2, padding=((1, 1), (1, 1)), precision=HIGHEST,
                      conv_general_dilated=ops.flax_conv_general_dilated)       # not plain: straight to lax
    _close(strided.apply(params, x), nn.Conv(5, (3, 3), strides=2, padding=((1, 1), (1, 1)),
                                             precision=HIGHEST).apply(params, x))


def _loop_input_grad_hlo(conv):
    """Optimised HLO of a 2-step ``lax.scan`` whose body takes a convolution's input gradient."""
    x, w = _inputs(3)

    def body(x, _):
        g = jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w))))(x)
        return x - 0.1 * g, None
    return jax.jit(lambda x: lax.scan(body, x, None, length=2)[0]).lower(x).compile().as_text()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's layout choice")
def test_loop_input_gradient_is_an_ordinary_convolution():
    """lax's own transpose rule leaves ``01oi`` (transposed-kernel) convolutions in a while body; ours not."""
    padding = ((1, 1), (1, 1))
    assert "01oi" in _loop_input_grad_hlo(lambda x, w: _reference(x, w, padding))    # the slow form exists
    assert "01oi" not in _loop_input_grad_hlo(lambda x, w: ops.conv2d(x, w, padding, HIGHEST))
