"""The gymnasium envs: spaces, registration, determinism, action handling, errors."""

import colorsys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import parrot_jax.envs as envs
from parrot_jax.envs import containers, manipulation, objects, scene, tasks
from parrot_jax.envs.manipulation import ManipulationEnv

PAPER_TEST_IDS = (
    "parrot/PlaceCanInPan-v0", "parrot/PlaceSculptureInBasket-v0",
    "parrot/PlaceChairOnCheckerboard-v0", "parrot/PickUpCup-v0", "parrot/PickUpCan-v0",
    "parrot/PickUpVase-v0", "parrot/PickUpBaseballCap-v0", "parrot/PlaceBaseballCapOnBlock-v0")


def test_registered_ids():
    assert envs.TEST_ENV_IDS == PAPER_TEST_IDS
    assert envs.TRAIN_ENV_IDS == ("parrot/GraspTrain-v0", "parrot/PickPlaceTrain-v0")
    for env_id in envs.ENV_IDS:
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_check_env_and_spaces(env_id):
    env = gym.make(env_id)
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
        assert env.action_space == gym.spaces.Box(-1, 1, (7,), np.float32)
        check_env(env.unwrapped, skip_render_check=True)
        obs, info = env.reset(seed=1)
        assert obs.shape == (48, 48, 3) and obs.dtype == np.uint8
        assert obs.std() > 5  # a real image, not a blank frame
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.dtype == np.uint8 and reward in (0.0, 1.0)
        assert isinstance(info["success"], bool) and reward == float(info["success"])
        assert info["object_pos"].shape == (3, 3) and info["ee_pos"].shape == (3,)
        assert not terminated and not truncated
    finally:
        env.close()


def test_test_tasks_use_their_objects():
    for env_id in PAPER_TEST_IDS:
        env = ManipulationEnv(env_id)
        env.reset(seed=0)
        assert env.scene_objects[0] == env.task.target
        assert len(set(env.scene_objects)) == 3
        assert env.scene_container == env.task.container
        env.close()


def test_recoloured_training_tasks_draw_the_same_scenes_in_other_colours():
    assert envs.TRAINING_SETS["library"] == envs.TRAIN_ENV_IDS
    assert envs.TRAINING_SETS["recoloured"] == ("parrot/GraspTrainRecoloured-v0",
                                                "parrot/PickPlaceTrainRecoloured-v0")
    assert all(i in envs.ENV_IDS for ids in envs.TRAINING_SETS.values() for i in ids)
    plain, recoloured = (ManipulationEnv("parrot/PickPlaceTrain-v0"),
                         ManipulationEnv("parrot/PickPlaceTrainRecoloured-v0"))
    try:
        assert recoloured.task.recolour_objects == recoloured.task.recolour_container == 0.5
        assert plain.task.recolour_objects == plain.task.recolour_container == 0.0
        changed, values = 0, []
        for seed in range(8):
            obs, info = plain.reset(seed=seed)
            obs_r, info_r = recoloured.reset(seed=seed)
            # the same objects, container, positions and yaws: only colours differ
            assert recoloured.scene_objects == plain.scene_objects
            assert recoloured.scene_container == plain.scene_container
            np.testing.assert_allclose(info_r["object_pos"], info["object_pos"], atol=1e-6)
            np.testing.assert_allclose(info_r["container_pos"], info["container_pos"])
            kinds = [*(objects.get_object(n) for n in plain.scene_objects),
                     containers.get_container(plain.scene_container)]
            drawn = [*(b for b in recoloured._drawn_specs), recoloured._container]
            for library, spec in zip(kinds, drawn):
                if spec.rgba != library.rgba:
                    changed += 1
                    values.append(max(spec.rgba[:3]))
            assert (obs_r != obs).any() == any(
                s.rgba != k.rgba for k, s in zip(kinds, drawn))
            np.testing.assert_array_equal(recoloured.reset(seed=seed)[0], obs_r)  # per seed
        assert 8 <= changed <= 24  # about half of the 32 things, recoloured
        assert min(values) < 0.35  # dark colours are drawn too
    finally:
        plain.close()
        recoloured.close()


def test_container_colours_recolour_the_container_alone():
    env = ManipulationEnv("parrot/PickPlaceTrainContainerColours-v0")
    try:
        changed = 0
        for seed in range(8):
            env.reset(seed=seed)
            library = containers.get_container(env.scene_container)
            assert all(spec.rgba == objects.get_object(spec.name).rgba
                       for spec in env._drawn_specs)
            changed += env._container.rgba != library.rgba
        assert 1 <= changed <= 7
    finally:
        env.close()


def test_dark_containers_draw_half_the_containers_dark_and_nothing_else():
    env = ManipulationEnv("parrot/PickPlaceTrainDarkContainers-v0")
    plain = ManipulationEnv("parrot/PickPlaceTrain-v0")
    try:
        values = []
        for seed in range(12):
            obs, _ = env.reset(seed=seed)
            plain_obs, _ = plain.reset(seed=seed)
            library = containers.get_container(env.scene_container)
            assert all(spec.rgba == objects.get_object(spec.name).rgba
                       for spec in env._drawn_specs)
            assert env.scene_container == plain.scene_container  # the same scene
            if env._container.rgba != library.rgba:
                values.append(colorsys.rgb_to_hsv(*env._container.rgba[:3])[2])
            else:
                np.testing.assert_array_equal(obs, plain_obs)
        assert 3 <= len(values) <= 9  # about half
        assert all(tasks.DARK_VALUE[0] <= v <= tasks.DARK_VALUE[1] for v in values), values
    finally:
        env.close()
        plain.close()


def test_container_rgba_redraws_the_container_in_the_same_scene():
    plain = ManipulationEnv("parrot/PlaceChairOnCheckerboard-v0")
    brown = ManipulationEnv("parrot/PlaceChairOnCheckerboard-v0", container_rgba=(0.7, 0.45, 0.15))
    try:
        assert brown.container_rgba == (0.7, 0.45, 0.15, 1.0)
        obs, info = plain.reset(seed=3)
        obs_b, info_b = brown.reset(seed=3)
        np.testing.assert_allclose(info_b["object_pos"], info["object_pos"], atol=1e-6)
        assert brown._container.rgba == brown._container.accent_rgba == brown.container_rgba
        dark = obs.max(-1) < 40  # the checkerboard's black tiles (and the gripper's fingers)
        assert dark.sum() > (obs_b.max(-1) < 40).sum() + 10
    finally:
        plain.close()
        brown.close()
    with pytest.raises(ValueError, match="container_rgba given for parrot/PickUpCan-v0"):
        ManipulationEnv("parrot/PickUpCan-v0", container_rgba=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"container_rgba=\(1, 2\); expected 3 or 4 values"):
        ManipulationEnv("parrot/PlaceCanInPan-v0", container_rgba=(1, 2))


def test_reset_reproduces_scene_after_other_episodes():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(6, 7)).astype(np.float32)

    def rollout(env, seed):
        frames = [env.reset(seed=seed)[0]]
        for a in actions:
            frames.append(env.step(a)[0])
        return np.stack(frames)

    a, b = ManipulationEnv("parrot/PickPlaceTrain-v0"), ManipulationEnv("parrot/PickPlaceTrain-v0")
    first = rollout(a, 5)
    rollout(b, 11)  # b has run another episode before
    second = rollout(b, 5)
    np.testing.assert_array_equal(first, second)
    assert a.scene_objects == b.scene_objects
    other = rollout(a, 6)
    assert not np.array_equal(first[0], other[0])  # seeds matter
    a.close(), b.close()


def test_horizon_and_terminate_on_success():
    env = ManipulationEnv("parrot/GraspTrain-v0", horizon=3)
    env.reset(seed=0)
    zero = np.zeros(7, np.float32)
    assert [env.step(zero)[3] for _ in range(3)] == [False, False, True]
    env.close()
    with pytest.raises(ValueError, match="horizon"):
        ManipulationEnv("parrot/GraspTrain-v0", horizon=0)


def test_actions_are_clipped_and_move_the_end_effector():
    env = ManipulationEnv("parrot/GraspTrain-v0")
    _, info = env.reset(seed=0)
    start = info["ee_pos"]
    _, _, _, _, info = env.step(np.array([0, 0, 50.0, 0, 0, 0, 0], np.float32))  # clipped to 1
    rise = info["ee_pos"][2] - start[2]
    assert 0.5 * manipulation.XYZ_SCALE < rise <= manipulation.XYZ_SCALE + 1e-3
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1, 1, 1, 0, 0, 0, 0], np.float32))
    assert np.all(info["ee_pos"] <= scene.WORKSPACE_HIGH + 0.01)  # the workspace box holds
    env.close()


def test_gripper_hysteresis():
    env = ManipulationEnv("parrot/GraspTrain-v0")
    env.reset(seed=0)
    step = lambda g: env.step(np.array([0, 0, 0, 0, 0, 0, g], np.float32))[4]
    assert step(-0.4)["gripper_open"]  # inside the dead band: unchanged
    info = step(-0.6)
    assert not info["gripper_open"] and info["finger_width"] < 0.01
    assert not step(0.4)["gripper_open"]
    info = step(0.9)
    assert info["gripper_open"] and info["finger_width"] > 0.08
    env.close()


@pytest.mark.parametrize("action, message", [
    (np.zeros(6, np.float32), r"shape \(7,\)"),
    (np.zeros((1, 7), np.float32), r"shape \(7,\)"),
    (np.zeros(7, np.int64), "float"),
    (np.array([0, 0, np.nan, 0, 0, 0, 0], np.float32), "finite"),
])
def test_bad_actions_raise(action, message):
    env = ManipulationEnv("parrot/GraspTrain-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)
    env.close()


def test_step_before_reset_raises():
    env = ManipulationEnv("parrot/GraspTrain-v0")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7, np.float32))
    env.close()


def test_unknown_env_id_lists_valid_ids():
    with pytest.raises(ValueError, match="parrot/PickUpCan-v0"):
        envs.make("parrot/PickUpBanana-v0")
    with pytest.raises(ValueError, match="parrot/GraspTrain-v0"):
        ManipulationEnv("parrot/PickUpBanana-v0")


def _egl_env(**kwargs):
    try:
        return ManipulationEnv("parrot/PickUpCan-v0", renderer="egl", **kwargs)
    except RuntimeError as error:  # no libEGL on this machine
        pytest.skip(str(error))


def _object_pixels(image):
    """Pixels of saturated colour: the objects (the table, floor and robot are grey/brown)."""
    rgb = image.astype(int)
    return (rgb.max(-1) - rgb.min(-1)) > 90


def test_egl_renderer_draws_the_same_scene():
    """The EGL renderer draws every object where TinyRenderer does (its lighting differs)."""
    egl = _egl_env()
    tiny = ManipulationEnv("parrot/PickUpCan-v0", renderer="tiny")
    try:
        for seed in (0, 1):
            a, _ = tiny.reset(seed=seed)
            b, _ = egl.reset(seed=seed)
            assert b.shape == a.shape and b.dtype == np.uint8
            mask_a, mask_b = _object_pixels(a), _object_pixels(b)
            assert mask_a.sum() > 50
            iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
            assert iou > 0.5, iou
            step_b = egl.step(np.zeros(7, np.float32))[0]
            assert step_b.shape == a.shape
    finally:
        egl.close()
        tiny.close()


def test_renderer_is_checked_and_defaults_from_the_environment(monkeypatch):
    with pytest.raises(ValueError, match=r"renderer='opengl'; expected one of \('tiny', "
                                         r"'egl'\)"):
        ManipulationEnv("parrot/PickUpCan-v0", renderer="opengl")
    monkeypatch.setenv("PARROT_JAX_RENDERER", "vulkan")
    with pytest.raises(ValueError, match=r"renderer='vulkan'.*PARROT_JAX_RENDERER"):
        ManipulationEnv("parrot/PickUpCan-v0")
    monkeypatch.setenv("PARROT_JAX_RENDERER", "tiny")
    env = ManipulationEnv("parrot/PickUpCan-v0")
    assert env.renderer == "tiny"
    env.close()
