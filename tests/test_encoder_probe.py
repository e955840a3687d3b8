"""The encoder probe: states with their ground truth, an episode split, the error tables."""

import json

import numpy as np
import pytest

from experiments import encoder_probe

TINY = {"channels": (4, 4, 4), "hidden": (16,), "features": 8, "strides": (2, 2, 1),
        "pooled": 0}


@pytest.fixture(scope="module")
def states():
    return encoder_probe.collect_states(episodes=2, seed=0)


def test_states_hold_the_offset_to_the_nearest_grasp_point(states):
    n = len(states.frames)
    assert states.frames.shape == (n, 48, 48, 3) and states.frames.dtype == np.uint8
    assert states.offsets.shape == (n, 3) and n >= 4 * 5
    assert set(np.unique(states.episode)) == {0, 1, 2, 3}  # 2 episodes x 2 tasks
    # every scripted grasp closes once, with the gripper open, near its object
    assert states.closes.sum() >= 4 and not (states.closes & ~states.opened).any()
    assert np.linalg.norm(states.offsets[states.closes], axis=-1).max() < 0.06
    assert 0.05 < np.linalg.norm(states.offsets[0]) < 0.5  # the start is away from objects


def test_states_hold_the_parts_of_the_offset(states):
    n = len(states.frames)
    assert states.ee.shape == (n, 3) and states.objects.shape == (n, 3, 3)
    assert (np.diff(states.objects[..., 1], axis=1) >= 0).all()  # ordered by y
    d = states.objects - states.ee[:, None]
    nearest = d[np.arange(n), np.linalg.norm(d, axis=-1).argmin(1)]
    np.testing.assert_allclose(nearest, states.offsets, atol=1e-6)
    positions = states.positions()
    assert positions.shape == (n, 4, 3)
    np.testing.assert_array_equal(positions[:, 0], states.ee)
    np.testing.assert_allclose(positions[:, 1:], d, atol=1e-7)  # each object from the gripper


def test_split_is_by_episode(states):
    train, test = encoder_probe.split(states, held_out=0.5)
    # the second episode of each task (episodes 0, 1: GraspTrain; 2, 3: PickPlaceTrain)
    assert set(np.unique(test.episode)) == {1, 3} and set(np.unique(train.episode)) == {0, 2}
    assert set(np.unique(test.env)) == {0, 1}
    assert len(train.frames) + len(test.frames) == len(states.frames)
    with pytest.raises(ValueError, match="held_out=1.5; expected a share in \\(0, 1\\)"):
        encoder_probe.split(states, 1.5)


def test_errors_against_known_predictions(states):
    train, test = encoder_probe.split(states, held_out=0.5)
    out = encoder_probe.errors(train, test, test.offsets.copy(), test.closes.astype(float))
    counts = [b["states"] for b in out["bands"].values()]
    assert sum(counts) == len(test.frames)
    distance = np.linalg.norm(test.offsets, axis=-1)
    for name, low, high in encoder_probe.BANDS:
        band, m = out["bands"][name], (distance >= low) & (distance < high)
        assert band["states"] == m.sum()
        if m.any():
            assert band["probe_mae_cm"] == [0.0, 0.0, 0.0]  # perfect predictions
            np.testing.assert_allclose(
                band["constant_mae_cm"],
                np.abs(train.offsets.mean(0) - test.offsets[m]).mean(0) * 100, rtol=1e-5)
    c = out["close_decision"]
    assert c["p_close_at_close"] == 1.0 and c["p_close_at_keep"] == 0.0


def test_position_errors_against_known_predictions(states):
    train, test = encoder_probe.split(states, held_out=0.5)
    shifted = test.positions() + np.array([0.01, -0.02, 0.0], np.float32)  # 1, 2, 0 cm off
    out = encoder_probe.errors(train, test, test.offsets, test.closes.astype(float), shifted)
    distance = np.linalg.norm(test.offsets, axis=-1)
    for name, low, high in encoder_probe.BANDS:
        m = (distance >= low) & (distance < high)
        parts = out["bands"][name]["positions"]
        if not m.any():
            assert parts["objects"]["probe_mae_cm"] is None
            continue
        for part in ("end_effector", "objects"):
            np.testing.assert_allclose(parts[part]["probe_mae_cm"], [1.0, 2.0, 0.0], atol=1e-4)
        np.testing.assert_allclose(
            parts["end_effector"]["constant_mae_cm"],
            np.abs(train.ee.mean(0) - test.ee[m]).mean(0) * 100, rtol=1e-5)
        from_gripper = train.objects - train.ee[:, None], test.objects - test.ee[:, None]
        np.testing.assert_allclose(
            parts["objects"]["constant_mae_cm"],
            np.abs(from_gripper[0].mean(0) - from_gripper[1][m]).mean((0, 1)) * 100, rtol=1e-5)
    assert "positions" not in encoder_probe.errors(
        train, test, test.offsets, test.closes.astype(float))["bands"]["within 6 cm"]


def test_run_writes_the_report_and_refuses_bad_fields(tmp_path):
    result = encoder_probe.run(str(tmp_path), episodes=2, steps=3, encoder=TINY, held_out=0.5,
                               batch_size=4)
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved["steps"] == 3 and saved["train_states"] + saved["test_states"] > 0
    assert set(saved["bands"]) == {name for name, _, _ in encoder_probe.BANDS}
    assert np.isfinite(result["final_train_loss"])
    md = (tmp_path / "probe.md").read_text()
    assert "| within 6 cm" in md and "constant (training mean)" in md
    with pytest.raises(ValueError, match="unknown encoder fields \\['width'\\]"):
        encoder_probe.run(str(tmp_path), encoder={"width": 3})


def test_run_with_positions_reports_the_parts(tmp_path):
    result = encoder_probe.run(str(tmp_path), episodes=2, steps=3, encoder=TINY, held_out=0.5,
                               batch_size=4, positions=True, augment_pad=0)
    assert result["positions"] is True and result["augment_pad"] == 0
    for band in result["bands"].values():
        if band["states"]:
            for part in ("end_effector", "objects"):
                assert np.isfinite(band["positions"][part]["probe_mae_cm"]).all()
    fit = result["on_training_states"]
    assert fit["states"] == min(result["test_states"], result["train_states"])
    assert sum(b["states"] for b in fit["bands"].values()) == fit["states"]
    md = (tmp_path / "probe.md").read_text()
    assert "| end effector: probe | constant | objects from it: probe | constant |" in md
    assert f"## {fit['states']} of the training states" in md
    with pytest.raises(ValueError, match="augment_pad=-1; expected >= 0 pixels"):
        encoder_probe.run(str(tmp_path), augment_pad=-1)


def test_run_saves_its_trained_encoder_for_a_prior_to_start_from(tmp_path, states):
    from parrot_jax.networks import saved_encoder

    result = encoder_probe.run(str(tmp_path), episodes=2, steps=3, encoder=TINY, held_out=0.5,
                               batch_size=4, positions=True, perturb=0.3)
    fields, params = saved_encoder.load_encoder(str(tmp_path / encoder_probe.ENCODER_DIR))
    assert fields == saved_encoder.encoder_fields(**TINY)
    config = saved_encoder.read_config(str(tmp_path / "encoder"))
    assert config["perturb"] == 0.3 and config["positions"] is True and config["steps"] == 3
    assert result["perturb"] == 0.3
    assert params["fc0"]["kernel"].shape == (12 * 12 * 4, 16)
    # perturbed episodes leave the scripted path: other end-effector positions
    perturbed = encoder_probe.collect_states(episodes=2, seed=0, perturb=0.3)
    assert not np.allclose(perturbed.ee[:20], states.ee[:20])
    with pytest.raises(ValueError, match=r"perturb=1.0; expected a share of the steps in"):
        encoder_probe.run(str(tmp_path), perturb=1.0)


def test_run_scores_the_probe_on_scenes_it_never_saw(tmp_path):
    result = encoder_probe.run(str(tmp_path), episodes=2, steps=3, encoder=TINY, held_out=0.5,
                               batch_size=4, positions=True, augment_pad=0,
                               test_envs=("parrot/PlaceCanInPan-v0",), test_episodes=1)
    scores = result["test_envs"]["parrot/PlaceCanInPan-v0"]
    assert scores["episodes"] == 1 and scores["states"] == 25  # one scripted episode
    assert sum(b["states"] for b in scores["bands"].values()) == scores["states"]
    for band in scores["bands"].values():
        if band["states"]:
            assert np.isfinite(band["positions"]["end_effector"]["probe_mae_cm"]).all()
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert set(saved["test_envs"]) == {"parrot/PlaceCanInPan-v0"}
    assert "## parrot/PlaceCanInPan-v0: 25 states of 1 scripted episodes" in (
        tmp_path / "probe.md").read_text()
    with pytest.raises(ValueError, match=r"env ids \['Pendulum-v1'\]: not the suite's"):
        encoder_probe.run(str(tmp_path), test_envs=("Pendulum-v1",))
    with pytest.raises(ValueError, match=r"env ids \['Pendulum-v1'\]: not the suite's"):
        encoder_probe.run(str(tmp_path), train_envs=("Pendulum-v1",))
    with pytest.raises(ValueError, match="train_envs is empty"):
        encoder_probe.run(str(tmp_path), train_envs=())


def test_run_trains_on_the_envs_it_is_given(tmp_path):
    from parrot_jax.envs import TRAINING_SETS
    from parrot_jax.networks import saved_encoder

    result = encoder_probe.run(str(tmp_path), episodes=2, steps=2, encoder=TINY, held_out=0.5,
                               batch_size=4, train_envs=TRAINING_SETS["recoloured"][:1])
    assert result["train_envs"] == ["parrot/GraspTrainRecoloured-v0"]
    assert result["train_states"] + result["test_states"] == 2 * 25  # one env's episodes
    config = saved_encoder.read_config(str(tmp_path / encoder_probe.ENCODER_DIR))
    assert config["train_envs"] == ["parrot/GraspTrainRecoloured-v0"]


def test_states_hold_the_gripper_an_object_held_and_the_container(states):
    n = len(states.frames)
    assert states.held.shape == (n,) and states.held.dtype == bool
    grasp, place = states.env == 0, states.env == 1  # GraspTrain, then PickPlaceTrain
    # every scripted episode lifts its object, so some states hold one, never while open
    assert states.held[grasp].any() and states.held[place].any()
    assert not (states.held & states.opened).any() and not states.held[0]
    np.testing.assert_array_equal(states.has_container, place)
    assert (states.container[grasp] == 0).all()
    # the container stands still while the gripper moves: container + ee is constant
    for episode in np.unique(states.episode[place]):
        m = states.episode == episode
        where = states.container[m] + states.ee[m]
        np.testing.assert_allclose(where, np.broadcast_to(where[0], where.shape), atol=1e-5)
        assert 0.05 < np.linalg.norm(states.container[m][0]) < 0.6


def test_state_errors_against_known_predictions(states):
    train, test = encoder_probe.split(states, held_out=0.5)
    perfect = {"p_open": test.opened.astype(float), "p_held": test.held.astype(float),
               "container": test.container + np.array([0.0, 0.03, 0.0], np.float32)}
    out = encoder_probe.errors(train, test, test.offsets, test.closes.astype(float),
                               None, perfect)["state"]
    for name, truth in (("gripper_open", test.opened), ("held", test.held)):
        assert out[name]["p_at_true"] == 1.0 and out[name]["p_at_false"] == 0.0
        assert out[name]["accuracy"] == 1.0 and out[name]["true_states"] == truth.sum()
    has = test.has_container
    assert out["container"]["states"] == has.sum() > 0
    np.testing.assert_allclose(out["container"]["probe_mae_cm"], [0.0, 3.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(
        out["container"]["constant_mae_cm"],
        np.abs(train.container[train.has_container].mean(0) - test.container[has]).mean(0)
        * 100, rtol=1e-5)
    flipped = dict(perfect, p_held=1.0 - test.held)  # every held decision wrong
    assert encoder_probe.errors(train, test, test.offsets, test.closes.astype(float), None,
                                flipped)["state"]["held"]["accuracy"] == 0.0
    assert "state" not in encoder_probe.errors(train, test, test.offsets,
                                               test.closes.astype(float))


def test_run_with_state_heads_reports_and_saves_them(tmp_path):
    from parrot_jax.networks import saved_encoder

    result = encoder_probe.run(str(tmp_path), episodes=2, steps=3, encoder=TINY, held_out=0.5,
                               batch_size=4, positions=True, state_heads=True)
    assert result["state_heads"] is True
    state = result["state"]
    assert 0.0 <= state["held"]["accuracy"] <= 1.0
    assert np.isfinite(state["container"]["probe_mae_cm"]).all()
    assert "state" in result["on_training_states"]
    md = (tmp_path / "probe.md").read_text()
    assert "- some object held: " in md and "- the container from the end effector" in md
    assert saved_encoder.read_config(str(tmp_path / "encoder"))["state_heads"] is True
    plain = encoder_probe.run(str(tmp_path / "plain"), episodes=2, steps=2, encoder=TINY,
                              held_out=0.5, batch_size=4)
    assert plain["state_heads"] is False and "state" not in plain
