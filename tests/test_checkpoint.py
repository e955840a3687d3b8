"""Orbax checkpoints: exact round trips of a train state, params alone, steps, shardings."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from parrot_jax import checkpoint, parallel
from parrot_jax.flows.train_state import TrainState


def _state(seed=0, step=3):
    keys = jax.random.split(jax.random.key(seed), 2)
    params = {"dense": {"kernel": jax.random.normal(keys[0], (4, 3)), "bias": jnp.zeros(3)},
              "scale": jax.random.normal(keys[1], ())}
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    for _ in range(step):  # non-trivial moments and count
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return TrainState(step=jnp.asarray(step, jnp.int32), params=params, opt_state=opt_state,
                      rng=jax.random.key(seed + 7))


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        tree)


def _assert_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_state_round_trip_is_exact_and_keeps_types(tmp_path):
    state = _state()
    with_manager = checkpoint.Checkpoints(str(tmp_path / "ckpt"))
    with_manager.save(3, state, state.params)
    with_manager.wait()
    restored = with_manager.restore_state(3, _abstract(state))
    with_manager.close()
    _assert_equal(restored, state)
    assert isinstance(restored, TrainState)
    # An abstract target keeps optax's NamedTuples (without one they come back as lists).
    assert type(restored.opt_state[0]) is type(state.opt_state[0])
    assert jnp.issubdtype(restored.rng.dtype, jax.dtypes.prng_key)


def test_params_item_restores_alone(tmp_path):
    state = _state()
    manager = checkpoint.Checkpoints(str(tmp_path))
    manager.save(5, state, state.params)
    manager.close()
    reader = checkpoint.Checkpoints(str(tmp_path), read_only=True)
    params = reader.restore_params(reader.resolve_step(None), _abstract(state.params))
    reader.close()
    _assert_equal(params, state.params)


def test_steps_and_max_to_keep(tmp_path):
    manager = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2)
    assert manager.latest_step() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint saved yet"):
        manager.resolve_step(None)
    for step in (10, 20, 30):
        state = _state(step=1)
        manager.save(step, state, state.params)
    manager.wait()
    assert manager.all_steps() == [20, 30] and manager.latest_step() == 30
    assert manager.resolve_step(20) == 20
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 10; saved steps are "
                                                r"\[20, 30\]"):
        manager.resolve_step(10)
    manager.close()


def test_saved_step_resolves_without_restoring(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint saved yet"):
        checkpoint.saved_step(str(tmp_path / "none"))
    manager = checkpoint.Checkpoints(str(tmp_path))
    state = _state(step=1)
    for step in (10, 20):
        manager.save(step, state, state.params)
    manager.close()
    assert checkpoint.saved_step(str(tmp_path)) == 20
    assert checkpoint.saved_step(str(tmp_path), 10) == 10
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 5"):
        checkpoint.saved_step(str(tmp_path), 5)


def test_kept_steps_outlive_max_to_keep_and_a_reopen(tmp_path):
    manager = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2, keep_steps=(0,))
    state = _state(step=1)
    for step in (0, 10, 20, 30):
        manager.save(step, state, state.params)
    manager.wait()
    assert manager.all_steps() == [0, 20, 30]
    manager.close()
    reopened = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2, keep_steps=(0,))
    reopened.save(40, state, state.params)
    reopened.wait()
    assert reopened.all_steps() == [0, 30, 40]
    _assert_equal(reopened.restore_params(0, _abstract(state.params)), state.params)
    reopened.close()


def test_unfinished_checkpoint_is_ignored(tmp_path):
    manager = checkpoint.Checkpoints(str(tmp_path))
    state = _state()
    manager.save(1, state, state.params)
    manager.close()
    # What a kill during an async save leaves behind: a temporary directory.
    os.makedirs(tmp_path / "2.orbax-checkpoint-tmp" / "state")
    reopened = checkpoint.Checkpoints(str(tmp_path))
    assert reopened.latest_step() == 1
    _assert_equal(reopened.restore_state(1, _abstract(state)), state)
    reopened.close()


@pytest.mark.multi_device
def test_restore_onto_a_mesh(tmp_path):
    mesh = parallel.make_mesh(4)
    state = jax.device_put(_state(), parallel.replicated(mesh))
    manager = checkpoint.Checkpoints(str(tmp_path))
    manager.save(3, state, state.params)
    manager.wait()
    restored = manager.restore_state(3, _abstract(state))
    manager.close()
    _assert_equal(restored, state)
    kernel = restored.params["dense"]["kernel"]
    assert kernel.sharding.is_equivalent_to(parallel.replicated(mesh), kernel.ndim)


def _claim_other_devices(step_dir: str, device_ids: list[int]) -> int:
    """Rewrites the layout recorded in a checkpoint's ``_sharding`` files to a mesh over
    ``device_ids`` (as a machine with other devices, e.g. 8 GPUs, writes it); returns how
    many arrays it touched."""
    import json
    touched = 0
    for item in ("params", "state"):
        path = os.path.join(step_dir, item, "_sharding")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            layouts = json.load(f)
        for key, text in layouts.items():
            layout = json.loads(text)
            layout["shape"] = [len(device_ids)]
            layout["device_mesh"] = {"mesh": [{"id": i} for i in device_ids]}
            layouts[key] = json.dumps(layout)
            touched += 1
        with open(path, "w") as f:
            json.dump(layouts, f)
    return touched


def test_a_checkpoint_from_other_devices_loads_and_resumes_here(tmp_path):
    """A prior trained elsewhere (its checkpoint records an 8-device mesh, ids 0-7, that
    this machine's one device lacks) loads with ``load_prior`` and resumes training:
    restores lay arrays out for this machine, never as recorded."""
    from experiments.configs import prior as prior_config
    from parrot_jax.data.synthetic import write_synthetic_dataset
    from parrot_jax.flows import train
    from parrot_jax.flows.prior import load_prior

    write_synthetic_dataset(str(tmp_path / "data"), num_episodes=8, episodes_per_shard=8)
    config = prior_config.get_config("tiny")
    config.update({"dataset": str(tmp_path / "data"), "num_steps": 10})
    workdir = str(tmp_path / "prior")
    first = train.train_and_evaluate(config, workdir)
    assert _claim_other_devices(os.path.join(workdir, checkpoint.DIRECTORY, "10"),
                                list(range(8))) > 0
    prior = load_prior(workdir)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, prior.params),
                 jax.tree.map(np.asarray, first.params))
    config.num_steps = 20
    resumed = train.train_and_evaluate(config, workdir)
    assert int(resumed.step) == 20
    assert not os.path.exists(os.path.join(workdir, checkpoint.DIRECTORY, "10.corrupt"))
