"""The refusal to overwrite another evaluation that experiments.evaluate applies before it
writes (the binary end to end, and its output names: tests/agents/test_train.py::
test_binaries)."""

import json

import pytest

from parrot_jax.agents.evaluate import refuse_overwrite

EVALUATION = {"step": 50000, "deterministic": True, "critic_samples": 1, "seed": 1_000_000,
              "episodes": 200}


def test_a_new_file_or_the_same_evaluation_may_be_written(tmp_path):
    out = tmp_path / "step_50000.json"
    refuse_overwrite(str(out), EVALUATION)
    out.write_text(json.dumps({**EVALUATION, "success_rate": 0.2}))
    refuse_overwrite(str(out), EVALUATION)  # rerunning the same evaluation repeats it


@pytest.mark.parametrize("change, said", [
    ({"deterministic": False}, "deterministic True there, False here"),
    ({"episodes": 400, "seed": 2_000_000},
     "seed 1000000 there, 2000000 here, episodes 200 there, 400 here"),
    ({"step": 0}, "step 50000 there, 0 here"),
])
def test_another_evaluation_is_refused_and_kept(tmp_path, change, said):
    out = tmp_path / "step_50000.json"
    kept = json.dumps({**EVALUATION, "success_rate": 0.2})
    out.write_text(kept)
    with pytest.raises(ValueError, match=f"holds another evaluation \\({said}\\); not "
                                         "overwritten: pass --out=PATH"):
        refuse_overwrite(str(out), {**EVALUATION, **change})
    assert out.read_text() == kept


@pytest.mark.parametrize("text", ["not json", '{"agent": "parrot", "spaces": {}}', "[1, 2]"])
def test_a_file_that_is_no_evaluation_is_refused(tmp_path, text):
    out = tmp_path / "config.json"
    out.write_text(text)
    with pytest.raises(ValueError, match="exists and is not an evaluation summary"):
        refuse_overwrite(str(out), EVALUATION)
    assert out.read_text() == text


def test_a_summary_without_critic_samples_sampled_once(tmp_path):
    out = tmp_path / "step_50000_sampled.json"
    old = {k: v for k, v in EVALUATION.items() if k != "critic_samples"}
    out.write_text(json.dumps(old))
    refuse_overwrite(str(out), EVALUATION)
    with pytest.raises(ValueError, match="critic_samples 1 there, 8 here"):
        refuse_overwrite(str(out), {**EVALUATION, "critic_samples": 8})
