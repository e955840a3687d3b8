"""S learners in one vmapped program equal S single runs with the same keys and batches."""

import functools

import jax
import numpy as np
import pytest

from experiments.configs import rl
from parrot_jax import parallel
from parrot_jax.agents import seeds
from parrot_jax.agents.agent import make_agent
from parrot_jax.agents.programs import compile_programs

SHAPE = (48, 48, 3)


def close(a, b):
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5), a, b)


def _agent(name):
    config = rl.get_config("tiny")
    config.agent = name
    return make_agent(config, SHAPE, "uint8", (7,))


def _batch(seed, size=16):
    rng = np.random.default_rng(seed)
    return dict(observations=rng.integers(0, 255, (size, *SHAPE), dtype=np.uint8),
                next_observations=rng.integers(0, 255, (size, *SHAPE), dtype=np.uint8),
                actions=rng.uniform(-1, 1, (size, 7)).astype(np.float32),
                rewards=rng.normal(size=size).astype(np.float32),
                terminated=rng.uniform(size=size) < 0.2)


def _single_runs(agent, keys, batches, fused):
    """Each agent alone: its key, its batches (``batches[s][u]``, update u of agent s)."""
    programs = compile_programs(agent, parallel.make_mesh(1), SHAPE, "uint8", fused, True)
    out = []
    for key, own in zip(keys, batches):
        state = programs.init(key)
        for u in range(0, len(own), fused):
            batch = own[u] if fused == 1 else seeds.stack(own[u:u + fused])
            state, metrics = programs.update(state, batch)
        out.append((state, np.asarray(metrics["critic_loss"])))
    return out


def _vmapped_run(agent, keys, batches, fused, devices=1, over="vmap"):
    s = len(keys)
    programs = seeds.compile_seed_programs(agent, parallel.make_mesh(devices), SHAPE, "uint8",
                                           fused, s, True, over)
    state = programs.init(jax.numpy.stack(keys))
    for u in range(0, len(batches[0]), fused):
        per_agent = [own[u] if fused == 1 else seeds.stack(own[u:u + fused]) for own in batches]
        state, metrics = programs.update(state, jax.device_put(seeds.stack(per_agent),
                                                               programs.batch_sharding))
    return state, np.asarray(metrics["critic_loss"])


@pytest.mark.parametrize("name, fused, over", [("sac", 1, "vmap"), ("sac", 2, "vmap"),
                                               ("iql", 1, "vmap"), ("sac", 2, "map")])
def test_vmapped_agents_equal_single_runs(name, fused, over):
    agent = _agent(name)
    keys = [jax.random.key(3), jax.random.key(11)]
    batches = [[_batch(100 * s + u) for u in range(4)] for s in range(2)]
    stacked, losses = _vmapped_run(agent, keys, batches, fused, over=over)
    assert int(stacked.step[0]) == int(stacked.step[1]) == 4
    for s, (single, loss) in enumerate(_single_runs(agent, keys, batches, fused)):
        mine = seeds.unstack(stacked, s)
        close(mine.critic_params, single.critic_params)
        close(mine.actor_params, single.actor_params)
        close(losses[s], loss)
    # the two agents really are independent: different keys and data, different weights
    a, b = (seeds.unstack(stacked.actor_params, s) for s in (0, 1))
    assert not np.allclose(jax.tree.leaves(a)[0], jax.tree.leaves(b)[0])


@pytest.mark.multi_device
def test_the_agent_axis_is_split_over_devices_when_it_divides():
    agent = _agent("sac")
    keys = [jax.random.key(s) for s in range(4)]
    batches = [[_batch(10 * s + u) for u in range(2)] for s in range(4)]
    one, loss_one = _vmapped_run(agent, keys, batches, 1, devices=1)
    four, loss_four = _vmapped_run(agent, keys, batches, 1, devices=4)
    leaf = jax.tree.leaves(four.critic_params)[0]
    assert len(leaf.sharding.device_set) == 4
    assert leaf.sharding.spec[0] == parallel.DATA_AXIS  # whole agents per device
    close(jax.device_get(four.critic_params), jax.device_get(one.critic_params))
    close(loss_four, loss_one)
    mesh = parallel.make_mesh(4)
    assert seeds.agent_sharding(mesh, 3) == parallel.replicated(mesh)  # 3 agents, 4 devices


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="seeds=0; expected at least one agent"):
        seeds.compile_seed_programs(_agent("sac"), parallel.make_mesh(1), SHAPE, "uint8", 1, 0)
    with pytest.raises(ValueError, match="over='pmap'; expected one of"):
        seeds.compile_seed_programs(_agent("sac"), parallel.make_mesh(1), SHAPE, "uint8", 1, 2,
                                    over="pmap")
