"""Run/training state checkpoints are restored by key path (issue 12): reordered fields restore to the
right place, renamed or reshaped ones fail with a message naming them, never a silent swap."""
from typing import Any, NamedTuple

import numpy as np
import optax
import pytest

from dds_jax import checkpoint


class State(NamedTuple):
    latent: Any
    mu: Any
    step: Any


class Reordered(NamedTuple):       # the same fields, declared in another order
    mu: Any
    step: Any
    latent: Any


class Renamed(NamedTuple):
    latent: Any
    first_moment: Any
    step: Any


def _state():
    return State(latent=np.full((2, 3), 1.0, np.float32), mu=np.full((2, 3), 2.0, np.float32),
                 step=np.int32(7))


def test_reordered_fields_restore_by_name(tmp_path):
    checkpoint.save_state(tmp_path / "state", _state())
    like = Reordered(mu=np.zeros((2, 3), np.float32), step=np.int32(0), latent=np.zeros((2, 3), np.float32))
    got = checkpoint.restore_state(tmp_path / "state", like)
    assert isinstance(got, Reordered)
    np.testing.assert_array_equal(got.latent, 1.0)      # by index these two would have swapped
    np.testing.assert_array_equal(got.mu, 2.0)
    assert int(got.step) == 7


def test_renamed_field_is_named_in_the_error(tmp_path):
    checkpoint.save_state(tmp_path / "state", _state())
    like = Renamed(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), np.int32(0))
    with pytest.raises(checkpoint.StateMismatchError, match=r"missing first_moment.*unexpected mu"):
        checkpoint.restore_state(tmp_path / "state", like)


def test_reshaped_field_is_named_in_the_error(tmp_path):
    checkpoint.save_state(tmp_path / "state", _state())
    like = State(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32), np.int32(0))
    with pytest.raises(checkpoint.StateMismatchError, match=r"latent has shape \(2, 3\).*\(2, 4\)"):
        checkpoint.restore_state(tmp_path / "state", like)


def test_optax_state_round_trips_and_save_is_atomic(tmp_path):
    """An Adam state (NamedTuples with an empty node) round-trips; a second save replaces the first."""
    params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
    opt_state = optax.adam(1e-3).init(params)
    tree = {"params": params, "opt": opt_state}
    checkpoint.save_state(tmp_path / "state", tree)
    tree2 = {"params": {k: v + 1 for k, v in params.items()}, "opt": opt_state}
    checkpoint.save_state(tmp_path / "state", tree2)
    got = checkpoint.restore_state(tmp_path / "state", tree)
    np.testing.assert_array_equal(got["params"]["w"], params["w"] + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]       # no .tmp / .old left
    assert set(checkpoint.state_paths(tree)) >= {"params/w", "params/b", "opt/0/mu/w", "opt/0/nu/b"}
