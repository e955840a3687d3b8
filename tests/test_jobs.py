"""The sweep scheduler: job validation, order, selection, specs, done markers, failures,
and child processes (with a stand-in child; tests/test_sweep.py runs real ones)."""

import json
import os
import signal
import subprocess
import sys
import time

import ml_collections
import pytest

from experiments import jobs
from parrot_jax import legacy
from experiments.jobs import Job


def _job(name, deps=(), kind="collect", **config):
    return Job(name, kind, ml_collections.ConfigDict({"value": 1, **config}), tuple(deps))


@pytest.fixture
def recorded(monkeypatch):
    """Every kind's runner replaced by one that records its call (and fails on 'fail')."""
    calls = []

    def runner(config, out):
        calls.append(os.path.basename(out))
        if config.get("fail"):
            raise RuntimeError(f"{out} broke")
        os.makedirs(out, exist_ok=True)

    monkeypatch.setattr(jobs, "RUNNERS", {k: runner for k in jobs.KINDS})
    return calls


def test_bad_job_lists_are_refused():
    with pytest.raises(ValueError, match="duplicate job names: a"):
        jobs.check_jobs([_job("a"), _job("a")])
    with pytest.raises(ValueError, match="job 'a' has unknown kind 'train'; expected one of "
                                         "collect, prior, pretrain, rl, prior_rollouts"):
        jobs.check_jobs([_job("a", kind="train")])
    with pytest.raises(ValueError, match="job 'b' depends on unknown jobs: z"):
        jobs.check_jobs([_job("a"), _job("b", ["z"])])
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        jobs.check_jobs([_job("a", ["b"]), _job("b", ["a"])])


def test_order_puts_dependencies_first_and_keeps_the_rest_stable():
    planned = [_job("rl", ["prior"]), _job("x"), _job("prior", ["data"]), _job("data")]
    assert [j.name for j in jobs.order(planned)] == ["data", "prior", "rl", "x"]


def test_select_adds_what_the_chosen_jobs_need():
    planned = [_job("data"), _job("prior", ["data"]), _job("rl/a/0", ["prior"]),
               _job("rl/b/0"), _job("other")]
    assert [j.name for j in jobs.select(planned, ["rl/a/*"])] == ["data", "prior", "rl/a/0"]
    assert jobs.select(planned, []) == planned
    with pytest.raises(ValueError, match="no job matches rl/c/\\*; jobs: data, prior"):
        jobs.select(planned, ["rl/c/*"])


def test_spec_round_trip_restores_tuples():
    job = _job("a", ["b"], kind="rl", hidden=(32, 32), env_ids=("x", "y"),
               nested={"channels": (4, 4), "none": None})
    back = jobs.job_from_spec(json.loads(json.dumps(job.spec())))
    assert back.spec() == job.spec() and back.deps == ("b",)
    assert back.config.hidden == (32, 32) and back.config.nested.channels == (4, 4)
    assert jobs.digest(back.spec()) == jobs.digest(job.spec())


def test_in_process_run_marks_done_skips_and_reruns_changed_jobs(tmp_path, recorded):
    planned = [_job("data"), _job("prior", ["data"])]
    out = jobs.run_jobs(planned, str(tmp_path), echo=lambda s: None)
    assert out.ok and list(out.ran) == ["data", "prior"] and recorded == ["data", "prior"]
    marker = json.loads((tmp_path / "jobs" / "prior.done.json").read_text())
    assert marker["digest"] == jobs.digest(planned[1].spec()) and marker["seconds"] >= 0
    assert json.loads((tmp_path / "jobs" / "data.json").read_text()) == planned[0].spec()

    again = jobs.run_jobs(planned, str(tmp_path), echo=lambda s: None)
    assert again.skipped == ["data", "prior"] and not again.ran and len(recorded) == 2

    changed = [_job("data"), _job("prior", ["data"], value=2)]  # e.g. more steps: resume
    third = jobs.run_jobs(changed, str(tmp_path), echo=lambda s: None)
    assert third.skipped == ["data"] and list(third.ran) == ["prior"]


def test_runs_that_differ_only_in_their_seed_are_grouped(tmp_path, monkeypatch, recorded):
    rl = [_job(f"rl/a/T/seed{s}", ["prior"], kind="rl", seed=s) for s in (0, 1, 2)]
    planned = [_job("prior"), rl[0], _job("rl/b/T/seed0", ["prior"], kind="rl", seed=0),
               rl[1], _job("rl/a/T/seed9", ["prior"], kind="rl", seed=9, value=2), rl[2]]
    grouped = jobs.group_seeds(planned)
    assert [j.name for j in grouped] == ["prior", "rl/a/T/together-seeds-0-1-2",
                                        "rl/b/T/seed0", "rl/a/T/seed9"]
    group = grouped[1]
    assert group.kind == jobs.TOGETHER and group.deps == ("prior",)
    back = jobs.job_from_spec(json.loads(json.dumps(group.spec())))
    assert [m.spec() for m in jobs.members(back)] == [m.spec() for m in rl]

    trained = []
    monkeypatch.setattr("parrot_jax.agents.together.train_together",
                        lambda configs, dirs: trained.append([c.seed for c in configs]))
    jobs.run_one(str(tmp_path), rl[1])  # one of them done before (alone): not trained again
    out = jobs.run_jobs([_job("prior"), *rl], str(tmp_path), echo=lambda s: None,
                        together=True)
    assert trained == [[0, 2]] and out.skipped == ["rl/a/T/seed1"]
    assert sorted(out.ran) == ["prior", "rl/a/T/seed0", "rl/a/T/seed2"]
    assert all(jobs.is_done(str(tmp_path), j) for j in rl)


def test_a_failure_blocks_its_dependents_only(tmp_path, recorded):
    planned = [_job("data", fail=True), _job("prior", ["data"]), _job("rl", ["prior"]),
               _job("other")]
    lines = []
    out = jobs.run_jobs(planned, str(tmp_path), echo=lines.append)
    assert not out.ok
    assert list(out.failed) == ["data"] and "RuntimeError" in out.failed["data"]
    assert out.blocked == ["prior", "rl"] and list(out.ran) == ["other"]
    assert recorded == ["data", "other"]
    assert "[2/4] blocked prior: needs data" in lines
    assert not (tmp_path / "jobs" / "data.done.json").exists()


def test_negative_process_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="processes=-1; expected 0"):
        jobs.run_jobs([_job("a")], str(tmp_path), processes=-1)


_CHILD = """
import json, sys, time
log, name, done, digest, fail = sys.argv[1:]
with open(log, "a") as f: f.write(f"start {name} {time.time()}\\n")
time.sleep(0.4)
with open(log, "a") as f: f.write(f"end {name} {time.time()}\\n")
if fail == "1": sys.exit(3)
with open(done, "w") as f: json.dump({"digest": digest}, f)
"""


def _fake_launch(log):
    def launch(workdir, job):
        done = jobs.done_path(workdir, job.name)
        os.makedirs(os.path.dirname(done), exist_ok=True)
        return subprocess.Popen([sys.executable, "-c", _CHILD, str(log), job.name, done,
                                 jobs.digest(job.spec()), "1" if job.config.get("fail") else "0"])
    return launch


def test_child_processes_run_at_most_n_at_once_after_their_dependencies(tmp_path):
    log = tmp_path / "events.log"
    planned = [_job("data"), _job("a", ["data"]), _job("b", ["data"]), _job("c", ["data"]),
               _job("bad", fail=True), _job("after_bad", ["bad"]), _job("d", ["a", "b"])]
    start = time.perf_counter()
    out = jobs.run_jobs(planned, str(tmp_path), processes=2, launch=_fake_launch(log),
                        poll=0.05, echo=lambda s: None)
    assert time.perf_counter() - start < 30
    assert set(out.ran) == {"data", "a", "b", "c", "d"} and list(out.failed) == ["bad"]
    assert "exit code 3" in out.failed["bad"] and out.blocked == ["after_bad"]
    events = []
    for line in log.read_text().splitlines():
        kind, name, t = line.split()
        events.append((float(t), kind, name))
    events.sort()
    running, peak, started, ended = set(), 0, {}, {}
    for t, kind, name in events:
        (running.add if kind == "start" else running.discard)(name)
        (started if kind == "start" else ended)[name] = t
        peak = max(peak, len(running))
    assert peak == 2  # parallel, and never more than asked
    for name in ("a", "b", "c"):
        assert started[name] >= ended["data"]
    assert started["d"] >= max(ended["a"], ended["b"])


def test_added_config_fields_at_their_old_value_keep_the_digest():
    from experiments.configs import rl as rl_config

    config = rl_config.get_config("tiny")
    for field, old in legacy.RL_FIELDS[legacy.TOP].items():  # e.g. keep_first_checkpoint,
        config[field] = old  # whose default changed when it was added
    job = jobs.Job("rl/parrot/X/seed0", "rl", config)
    old_spec = job.spec()
    for field in legacy.RL_FIELDS["network"]:  # the spec as recorded before the fields existed
        del old_spec["config"]["network"][field]
    for field in legacy.RL_FIELDS[legacy.TOP]:  # and at the top level
        del old_spec["config"][field]
    assert jobs.digest(old_spec) == jobs.digest(job.spec())
    config.network.trunk = "prior_encoder"
    assert jobs.digest(jobs.Job(job.name, "rl", config).spec()) != jobs.digest(old_spec)


def test_added_prior_fields_at_their_old_value_keep_the_digest():
    from experiments.configs import prior as prior_config

    config = prior_config.get_config("cpu")
    job = jobs.Job("prior/cpu", "prior", config)
    old_spec = job.spec()
    del old_spec["config"]["model"]["offset_head"], old_spec["config"]["offset_loss_weight"]
    assert jobs.digest(old_spec) == jobs.digest(job.spec())
    config.model.offset_head = True
    assert jobs.digest(jobs.Job(job.name, "prior", config).spec()) != jobs.digest(old_spec)


def test_legacy_fields():
    assert legacy.with_added_fields("network", {"hidden": [8]}) == {
        "hidden": [8], "trunk": "conv", "freeze_trunk": False, "trunk_dtype": "float32",
        "vmap_trunks": False}
    assert legacy.with_added_fields("network", {"trunk": "prior_encoder"})["trunk"] == \
        "prior_encoder"
    config = {"network": {"trunk": "conv", "freeze_trunk": True}, "seed": 0, "pretrained": ""}
    assert legacy.without_added_defaults(config, legacy.RL_FIELDS) == {
        "network": {"freeze_trunk": True}, "seed": 0}
    assert legacy.without_added_defaults({**config, "pretrained": "runs/vae"},
                                         legacy.RL_FIELDS)["pretrained"] == "runs/vae"
    assert config["network"]["trunk"] == "conv"  # a copy: the argument is left as it was


def test_a_job_runs_in_one_process_at_a_time(tmp_path, recorded):
    workdir = str(tmp_path)
    job = _job("data")
    with jobs.job_lock(workdir, "data"):  # another sweep runs it now
        with pytest.raises(jobs.JobLocked, match=f"job data is running in another process "
                                                 f"\\(pid {os.getpid()} on .*; lock "
                                                 f"{jobs.lock_path(workdir, 'data')}\\)"):
            jobs.run_one(workdir, job)
        out = jobs.run_jobs([job, _job("prior", ["data"])], workdir, echo=lambda s: None)
        assert "running in another process" in out.failed["data"]
        assert out.blocked == ["prior"] and recorded == []
        # a child process (the sweep's --job path) exits with the lock's own code
        jobs.io.write_json(jobs.spec_path(workdir, "data"), job.spec())
        child = subprocess.run([sys.executable, "-m", "experiments.sweep",
                                f"--job={jobs.spec_path(workdir, 'data')}",
                                f"--workdir={workdir}"], capture_output=True, text=True)
        assert child.returncode == jobs.LOCKED_EXIT_CODE
        assert "job data is running in another process" in child.stderr
    assert jobs.run_jobs([job], workdir, echo=lambda s: None).ok and recorded == ["data"]
    assert jobs.run_one(workdir, job) == 0.0 and recorded == ["data"]  # done meanwhile



@pytest.mark.fault
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # by design
def test_a_ctrl_c_that_library_code_swallows_keeps_the_job_from_being_marked_done(
        tmp_path, monkeypatch):
    """Python prints and drops an exception raised inside a ``__del__``: a Ctrl-C landing
    there lets the job run to its end, which must not then be marked done."""
    workdir, finished = str(tmp_path), []

    class Dropped:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt here is ignored

    def runner(config, out):
        if config.interrupt:
            Dropped()
        finished.append(config.interrupt)

    monkeypatch.setattr(jobs, "RUNNERS", {k: runner for k in jobs.KINDS})
    # Python's own handler, as in a sweep's child (an earlier test in this worker process
    # may have left SIGINT ignored, and then run_one installs nothing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt,
                           match="job data was interrupted; not marked done"):
            jobs.run_one(workdir, _job("data", interrupt=True))
        assert finished == [True] and not os.path.exists(jobs.done_path(workdir, "data"))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        jobs.run_one(workdir, _job("data", interrupt=False))  # no Ctrl-C: marked done
        assert finished == [True, False] and os.path.exists(jobs.done_path(workdir, "data"))
    finally:
        signal.signal(signal.SIGINT, previous)

@pytest.mark.fault
def test_the_lock_of_a_killed_holder_is_released(tmp_path):
    workdir = str(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from experiments import jobs\n"
         "with jobs.job_lock(sys.argv[1], 'a'):\n    print('held', flush=True); time.sleep(60)",
         workdir], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(jobs.JobLocked):
        with jobs.job_lock(workdir, "a"):
            pass
    holder.kill()
    holder.wait()
    with jobs.job_lock(workdir, "a"):  # kill -9 released it
        pass
