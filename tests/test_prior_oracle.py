"""The state oracle (experiments/prior_oracle.py): features, collection, a tiny flow, rollouts."""

import numpy as np
import pytest

from experiments import prior_oracle
from parrot_jax.envs import make


def test_features_hide_the_target_and_add_the_container():
    env = make("parrot/GraspTrain-v0").unwrapped
    _, info = env.reset(seed=0)
    f = prior_oracle.features(info)
    assert f.shape == (16,) and f.dtype == np.float32
    np.testing.assert_allclose(f[:3], info["ee_pos"], atol=1e-6)
    assert f[3] == 1.0  # the gripper starts open
    assert np.all(np.diff(f[4:13].reshape(3, 3)[:, 1]) >= 0)  # objects ordered by y
    env.close()
    env = make("parrot/PickPlaceTrain-v0").unwrapped
    _, info = env.reset(seed=0)
    assert prior_oracle.features(info).shape == (19,)
    env.close()


def test_collect_train_and_roll_out_end_to_end():
    episodes = prior_oracle.collect("parrot/GraspTrain-v0", 4, perturb=0.3, processes=1)
    assert 2 <= len(episodes) <= 4  # successes only
    states, actions = episodes[0]
    assert states.shape == (25, 16) and actions.shape == (25, 7)
    assert np.abs(actions).max() <= 0.9 + 1e-6  # the scripted clip
    flow, params, normalise, curve = prior_oracle.train(episodes, steps=3, batch_size=8)
    assert [row[0] for row in curve] == [0, 2] and all(np.isfinite(row[1:]).all() for row in curve)
    for mode in ("fresh", "zero"):
        r = prior_oracle.rollouts(flow, params, normalise, "parrot/GraspTrain-v0", 1, mode)
        assert r["mode"] == mode and r["episodes"] == 1
        assert 0.0 <= r["task_success"] <= r["some_object_held"] <= 1.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="perturb=1.5"):
        prior_oracle.collect("parrot/GraspTrain-v0", 1, perturb=1.5, processes=1)
    with pytest.raises(ValueError, match="mode='held'"):
        prior_oracle.rollouts(None, None, None, "parrot/GraspTrain-v0", 1, "held")
