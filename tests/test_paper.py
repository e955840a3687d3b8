"""The paper's experiment plan: which jobs each figure needs, shared once, with the right
configs; the config variants and their refusals."""

import collections

import pytest

from experiments import paper
from experiments.configs import paper as paper_config
from parrot_jax.envs import TEST_ENV_IDS


def _plan(variant, workdir="w"):
    jobs, figures = paper.plan(paper_config.get_config(variant), workdir)
    return {j.name: j for j in jobs}, figures


def test_paper_scale_plan_counts_and_shares_jobs():
    jobs, figures = _plan("all")
    kinds = collections.Counter(j.kind for j in jobs.values())
    # fig5: 8 agents x 8 tasks x 3 seeds = 192; fig6: 3 more dataset sizes x 4 tasks x 3 =
    # 36 (its 50K runs and SAC are fig5's); fig7: 2 one-kind priors x 8 tasks x 3 = 48.
    assert kinds == {"rl": 276, "prior": 6, "pretrain": 4, "collect": 3, "prior_rollouts": 1}
    assert sorted(n for n in jobs if n.startswith(("data/", "priors/"))) == [
        "data/both", "data/grasp", "data/place", "priors/both_10000", "priors/both_25000",
        "priors/both_5000", "priors/both_50000", "priors/grasp", "priors/place"]
    assert list(figures) == ["fig4", "fig5", "fig6", "fig7"]
    fig6 = figures["fig6"]["panels"][0]["curves"]
    assert [c["label"] for c in fig6] == ["PARROT, 5,000 trajectories",
                                          "PARROT, 10,000 trajectories",
                                          "PARROT, 25,000 trajectories",
                                          "PARROT, 50,000 trajectories", "SAC (no prior)"]
    assert fig6[3]["seeds"] == [["rl/parrot/PickUpCan/seed0"], ["rl/parrot/PickUpCan/seed1"],
                                ["rl/parrot/PickUpCan/seed2"]]  # fig5's runs
    grasp_panel = figures["fig7"]["panels"][0]
    assert grasp_panel["title"] == "grasp test tasks (mean of 4)"
    assert grasp_panel["curves"][0]["seeds"][0] == [
        f"rl/parrot_grasp/{t}/seed0" for t in ("PickUpCup", "PickUpCan", "PickUpVase",
                                                "PickUpBaseballCap")]
    assert len(figures["fig5"]["panels"]) == len(TEST_ENV_IDS)


def test_job_configs_point_at_their_inputs():
    jobs, _ = _plan("all")
    both = jobs["data/both"].config
    assert both.num_trajectories == 50_000 and both.env_ids == (
        "parrot/GraspTrain-v0", "parrot/PickPlaceTrain-v0") and both.mix == (0.5, 0.5)
    grasp = jobs["data/grasp"].config
    assert grasp.env_ids == ("parrot/GraspTrain-v0",) and grasp.mix == (1.0,)
    assert grasp.num_trajectories == 25_000
    prior = jobs["priors/both_5000"]
    assert prior.config.dataset == "w/data/both" and prior.config.max_episodes == 5000
    assert prior.deps == ("data/both",) and prior.config.num_steps == 500_000
    parrot = jobs["rl/parrot_5000/PlaceCanInPan/seed2"]
    assert parrot.config.prior == "w/priors/both_5000" and parrot.deps == ("priors/both_5000",)
    assert (parrot.config.agent, parrot.config.env, parrot.config.seed) == (
        "parrot", "parrot/PlaceCanInPan-v0", 2)
    bc = jobs["rl/bc_sac/PickUpCan/seed0"]
    assert bc.config.dataset == "w/data/both" and bc.config.prior == "" and bc.deps == (
        "data/both",)
    sac = jobs["rl/sac/PickUpCan/seed0"]
    assert sac.deps == () and sac.config.prior == "" and sac.config.batch_size == 256
    vae = jobs["pretrained/vae"]
    assert (vae.config.kind, vae.config.dataset, vae.config.max_episodes, vae.deps) == (
        "vae", "w/data/both", 50_000, ("data/both",))
    assert vae.config.model.channels == 256 and vae.config.num_steps == 1_500_000
    features = jobs["rl/vae_features/PickUpCan/seed1"]
    assert features.config.pretrained == "w/pretrained/vae" and features.deps == (
        "pretrained/vae",)
    assert jobs["rl/sac/PickUpCan/seed0"].config.pretrained == ""
    hirl = jobs["rl/hirl/PlaceCanInPan/seed0"]
    assert hirl.config.pretrained == "w/pretrained/cvae" and hirl.deps == ("pretrained/cvae",)
    cvae = jobs["pretrained/cvae"].config
    assert (cvae.kind, cvae.beta.value, cvae.beta.midpoint, cvae.num_steps) == (
        "cvae", 1e-3, 25_000, 500_000)
    trajrl = jobs["rl/trajrl/PickUpCan/seed2"]
    assert trajrl.config.pretrained == "w/pretrained/trajvae" and trajrl.deps == (
        "pretrained/trajvae",)
    trajvae = jobs["pretrained/trajvae"].config
    assert (trajvae.kind, trajvae.model.horizon, trajvae.beta.value, trajvae.num_steps) == (
        "trajvae", 25, 1e-3, 500_000)
    spirl = jobs["rl/spirl/PlaceCanInPan/seed1"]
    assert spirl.config.pretrained == "w/pretrained/spirl" and spirl.deps == (
        "pretrained/spirl",)
    skills = jobs["pretrained/spirl"].config
    assert (skills.kind, skills.model.horizon, skills.model.latent_dim, skills.beta.value,
            skills.num_steps) == ("spirl", 5, 10, 1e-2, 100_000)
    rollouts = jobs["fig4/rollouts"].config
    assert rollouts.prior == "w/priors/both_50000" and rollouts.env == ",".join(TEST_ENV_IDS)


def test_totals_follow_the_configs():
    jobs, _ = paper.plan(paper_config.get_config("fig5"), "w")
    t = paper.totals(jobs)
    assert t["rl_runs"] == 192 and t["rl_env_steps"] == 192 * 200_000
    assert t["rl_updates"] == 192 * (200_000 - 2_500)
    assert t["trajectories"] == 50_000 and t["prior_steps"] == 500_000
    # the VAE's, cVAE's, TrajVAE's, skill model's
    assert t["pretrain_steps"] == 1_500_000 + 2 * 500_000 + 100_000
    cpu, _ = paper.plan(paper_config.get_config("fig5,cpu"), "w")
    t = paper.totals(cpu)
    assert t["rl_env_steps"] == 192 * 40_000 and t["rl_updates"] == 192 * 39_000 // 4
    assert t["trajectories"] == 10_000 and t["prior_steps"] == 48_000
    assert t["pretrain_steps"] == 10_000 + 3 * 20_000


def test_offline_figure_adds_labelled_data_and_shares_fig5_runs():
    config = paper_config.get_config("fig5+offline,cpu")
    jobs = {j.name: j for j in paper.plan(config, "w")[0]}
    fig5_only = {j.name for j in paper.plan(paper_config.get_config("fig5,cpu"), "w")[0]}
    added = sorted(set(jobs) - fig5_only)
    # 2 tasks x (IQL, AWAC) x 3 seeds, and one labelled dataset per task; PARROT and
    # BC-SAC are fig5's jobs
    assert len(added) == 14 and [n for n in added if n.startswith("data/")] == [
        "data/labelled/PickUpCan", "data/labelled/PlaceCanInPan"]
    data = jobs["data/labelled/PlaceCanInPan"].config
    assert (data.env_ids, data.mix, data.keep, data.noise, data.num_trajectories) == (
        ("parrot/PlaceCanInPan-v0",), (1.0,), "all", 0.3, 1000)
    iql = jobs["rl/iql/PlaceCanInPan/seed1"]
    assert iql.deps == ("data/labelled/PlaceCanInPan",) and iql.config.agent == "iql"
    assert (iql.config.offline.dataset, iql.config.offline.steps, iql.config.offline.mix) == (
        "w/data/labelled/PlaceCanInPan", 5000, 0.5)
    assert jobs["rl/parrot/PickUpCan/seed0"].config.offline.dataset == ""
    t = paper.totals([jobs[n] for n in added])
    assert t["rl_runs"] == 12 and t["rl_updates"] == 12 * (39_000 // 4 + 5000)
    figure = paper.plan(config, "w")[1]["offline"]
    assert [c["label"] for c in figure["panels"][1]["curves"]] == [
        "IQL", "AWAC", "PARROT", "BC-SAC"]
    assert paper_config.get_config("all").figures == ("fig4", "fig5", "fig6", "fig7")


def test_variants_pick_figures_and_scale():
    config = paper_config.get_config("fig4+fig6,cpu")
    assert config.figures == ("fig4", "fig6") and config.rl.batch_size == 64
    assert config.fig6.trajectories == (1_000, 2_500, 5_000, 10_000)
    tiny = paper_config.get_config("all,tiny")
    assert tiny.seeds == (0, 1) and tiny.rl.total_env_steps == 120
    for bad in ("fig8", "fig5,gpu", "fig5+", "fig5,cpu,tiny"):
        with pytest.raises(ValueError, match="unknown paper config variant"):
            paper_config.get_config(bad)


def test_bad_settings_are_named():
    config = paper_config.get_config("fig5")
    config.fig5.agents = ("parrot", "ppo")
    with pytest.raises(ValueError, match="unknown agent 'ppo'"):
        paper.plan(config, "w")
    config = paper_config.get_config("fig6")
    config.fig6.tasks = ("parrot/PickUpSock-v0",)
    with pytest.raises(ValueError, match="unknown env id 'parrot/PickUpSock-v0'"):
        paper.plan(config, "w")
    config = paper_config.get_config("fig5")
    config.figures = ("fig5", "fig9")
    with pytest.raises(ValueError, match="unknown figure 'fig9'"):
        paper.plan(config, "w")
    config = paper_config.get_config("offline")
    config.offline.agents = ("iql", "cql")
    with pytest.raises(ValueError, match="unknown agent 'cql'"):
        paper.plan(config, "w")
    config = paper_config.get_config("offline")
    config.offline.trajectories = 0
    with pytest.raises(ValueError, match="trajectory counts must be positive"):
        paper.plan(config, "w")
    config = paper_config.get_config("fig5")
    config.seeds = ()
    with pytest.raises(ValueError, match="config.seeds is empty"):
        paper.plan(config, "w")


def test_conflicting_definitions_of_one_job_are_refused():
    planner = paper._Planner(paper_config.get_config("fig5"), "w")
    planner.rl("sac", "parrot/PickUpCan-v0", 0)
    planner.config.rl.batch_size = 32
    with pytest.raises(ValueError, match="define job 'rl/sac/PickUpCan/seed0' differently"):
        planner.rl("sac", "parrot/PickUpCan-v0", 0)


def test_inputs_made_elsewhere_replace_their_jobs(tmp_path):
    prior, data = tmp_path / "prior", tmp_path / "data"
    prior.mkdir()
    data.mkdir()
    config = paper_config.get_config("fig4+fig5+fig6,cpu")
    config.prior_dir, config.dataset_dir = str(prior), str(data)
    jobs = {j.name: j for j in paper.plan(config, "w")[0]}
    # The main prior and data/both are not planned; Figure 6's smaller priors still are,
    # on the given dataset, and nothing waits for a job that does not exist.
    assert "priors/both_10000" not in jobs and "data/both" not in jobs
    assert jobs["priors/both_1000"].config.dataset == str(data)
    assert jobs["priors/both_1000"].deps == ()
    parrot = jobs["rl/parrot/PickUpCan/seed0"]
    assert parrot.config.prior == str(prior) and parrot.deps == ()
    bc = jobs["rl/bc_sac/PickUpCan/seed0"]
    assert bc.config.dataset == str(data) and bc.deps == ()
    assert jobs["pretrained/vae"].config.dataset == str(data)
    assert jobs["rl/vae_features/PickUpCan/seed0"].deps == ("pretrained/vae",)
    assert jobs["rl/parrot_1000/PickUpCan/seed0"].deps == ("priors/both_1000",)
    assert jobs["fig4/rollouts"].config.prior == str(prior) and jobs["fig4/rollouts"].deps == ()
    config.prior_dir = str(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"config.prior_dir='.*missing' is not a directory; "
                                         "expected an experiments.train_prior workdir"):
        paper.plan(config, "w")


def test_rl_by_agent_sets_one_agents_runs():
    config = paper_config.get_config("fig5,cpu")
    config.rl_by_agent = ('{"parrot": {"learner": "awac", "awac.temperature": 0.3, '
                          '"parrot.critic_input": "action"}, "sac": {"batch_size": 256}}')
    jobs = {j.name: j for j in paper.plan(config, "w")[0]}
    parrot = jobs["rl/parrot/PickUpCan/seed1"].config
    assert (parrot.learner, parrot.awac.temperature, parrot.parrot.critic_input) == (
        "awac", 0.3, "action") and parrot.batch_size == 64
    sac = jobs["rl/sac/PickUpCan/seed1"].config
    assert sac.batch_size == 256 and sac.learner == ""
    bc = jobs["rl/bc_sac/PickUpCan/seed1"].config
    assert bc.learner == "" and bc.batch_size == 64
    assert config.rl.learner == ""  # the shared settings stay as they were


@pytest.mark.parametrize("value, message", [
    ("{parrot", "is not JSON"),
    ('{"parrot": 3}', "expected a JSON object of objects"),
    ('{"ppo": {}}', "unknown agent 'ppo'"),
    ('{"parrot": {"awac.temprature": 0.3}}',
     r"config.rl_by_agent\['parrot'\]: 'awac.temprature' is not a setting of the RL config"),
    ('{"sac": {"batch_size.x": 1}}', "'batch_size.x' is not a setting"),
    ('{"sac": {"batch_size": "big"}}', r"batch_size='big': Could not override"),
])
def test_bad_rl_by_agent_is_named(value, message):
    config = paper_config.get_config("fig5,cpu")
    config.rl_by_agent = value
    with pytest.raises(ValueError, match=message):
        paper.plan(config, "w")
