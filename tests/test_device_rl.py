"""experiments/device_rl.sh, the GPU lease's PARROT run, on CPU at the tiny scale."""

import json
import os
import re
import subprocess
import sys

from tests.flows.prior_workdir import write_prior

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join("experiments", "device_rl.sh")

# requirements.txt's packages as the GPU lease meets them: on the machine's image (its JAX,
# flax, optax, orbax and what they pull in: /work/.library/device), never imported by the
# lease's programs, or carried by `make device-wheels` (everything else)
ON_THE_IMAGE = {"absl-py", "flax", "jax", "jaxlib", "numpy", "optax", "orbax-checkpoint",
                "scipy"}
NOT_ON_THE_LEASE = {"h5py", "matplotlib", "minari", "submitit"}  # each its module's name

# imported at every Python start-up with its folder on PYTHONPATH; leaves a mark it ran
_BLOCKER = """import os, sys
open(os.path.join(os.path.dirname(__file__), "ran"), "w").close()
class _NotOnTheLease:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}: not carried to the GPU "
                                      "lease (tests/test_device_rl.py)", name=name)
sys.meta_path.insert(0, _NotOnTheLease())
"""


def _name(distribution):
    return distribution.lower().replace("_", "-")


def _pins(text):
    return {_name(n): v for n, v in re.findall(r"^\s*([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def _run(args, tmp_path, **env):
    # the interpreter running the tests (`make test` does not put the venv on PATH)
    # and none of the Python 3.12 wheels a `make device-wheels` here may have left in .whl/
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "DEVICE_WHEELS": str(tmp_path / "no_wheels"), **env}
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_make_device_wheels_carries_every_requirement_the_image_lacks():
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    recipe = makefile.split("\ndevice-wheels:", 1)[1].split("benchmarks.slim_wheel", 1)[0]
    carried = {_name(n): v for n, v in re.findall(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", recipe)}
    carried["pybullet"] = re.search(r"^PYBULLET_VERSION := (\S+)$", makefile, re.M).group(1)
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        required = _pins(f.read())
    for name, version in required.items():
        where = [name in carried, name in ON_THE_IMAGE, name in NOT_ON_THE_LEASE]
        assert sum(where) == 1, f"{name}: carried, on the image, not on the lease = {where}"
        if name in carried:  # the lease runs what the tests run
            assert carried[name] == version, f"{name}: {carried[name]} carried, {version} pinned"


def test_trains_evaluates_and_copies_the_small_outputs(tmp_path):
    prior = write_prior(tmp_path / "prior")
    workdir = tmp_path / "run"
    # what the lease does not carry cannot be imported (sitecustomize runs at start-up)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        _BLOCKER.format(blocked=NOT_ON_THE_LEASE))
    result = _run(["600", prior, "--config.eval_every=60", "--config.checkpoint_every=60",
                   "--config.num_envs=2"], tmp_path,
                  DEVICE_RL_CONFIG="experiments/configs/rl.py:tiny",
                  DEVICE_RL_WORKDIR=str(workdir), DEVICE_RL_EPISODES="3",
                  PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (site / "ran").exists()
    out = tmp_path / "out"
    # the recipe's flags reached the run (the run's own record of its config)
    config = json.loads((workdir / "config.json").read_text())
    assert config["learner"] == "awac" and config["awac"]["temperature"] == 0.3
    assert config["parrot"]["critic_input"] == "action"
    assert config["network"]["vmap_trunks"] and config["network"]["trunk_dtype"] == "bfloat16"
    assert config["eval_deterministic"] is False and config["num_envs"] == 2
    # small files copied, checkpoints and replay not
    assert (out / "config.json").read_text() == (workdir / "config.json").read_text()
    assert (out / "metrics.jsonl").stat().st_size > 0
    assert not (out / "checkpoints").exists() and not (out / "replay").exists()
    final = json.loads((out / "eval_final.json").read_text())
    assert final["episodes"] == 3 and final["step"] == 120
    assert (out / "train_rl.log").exists() and (out / "evaluate.log").exists()


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    result = _run([], tmp_path)
    assert result.returncode == 2 and "usage: bash experiments/device_rl.sh" in result.stderr
    result = _run(["60", str(tmp_path / "nowhere")], tmp_path)
    assert result.returncode == 2
    assert f"PRIOR_WORKDIR {tmp_path / 'nowhere'} is not a directory" in result.stderr
    assert not (tmp_path / "out").exists()


def test_make_device_prior_keeps_the_newest_parameters_only(tmp_path):
    from parrot_jax.flows.prior import load_prior
    prior = write_prior(tmp_path / "prior", step=0)
    write_prior(tmp_path / "newer", step=7)  # a second step in the same workdir
    os.rename(tmp_path / "newer" / "checkpoints" / "7", tmp_path / "prior" / "checkpoints" / "7")
    assert (tmp_path / "prior" / "checkpoints" / "7" / "state").is_dir()
    dest = tmp_path / "carry"
    subprocess.run(["make", "-s", "device-prior", f"PRIOR={prior}", f"DEVICE_PRIOR={dest}"],
                   cwd=ROOT, check=True, capture_output=True)
    assert sorted(os.listdir(dest / "checkpoints")) == ["7"]
    assert not (dest / "checkpoints" / "7" / "state").exists()
    assert load_prior(str(dest)).step == 7
    result = subprocess.run(["make", "-s", "device-prior", f"PRIOR={tmp_path / 'nowhere'}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"DIR='{tmp_path / 'nowhere'}' is not a workdir of experiments.train_prior" in result.stdout
