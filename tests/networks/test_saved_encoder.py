"""A saved encoder: round trip, the fields compared, and what a wrong directory says."""

import jax
import numpy as np
import pytest

from parrot_jax.flows.prior import write_initial_prior
from parrot_jax.networks import saved_encoder
from parrot_jax.networks.encoder import ConvEncoder

FIELDS = {"channels": [4, 4], "hidden": [8], "features": 8, "strides": [2, 2], "pooled": 0}


def _params(seed=0, shape=(48, 48, 3), **fields):
    module = ConvEncoder(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in {**FIELDS, **fields}.items()})
    return module.init(jax.random.key(seed), np.zeros((1,) + shape, np.uint8))["params"]


def test_round_trip_keeps_the_parameters_and_completes_the_fields(tmp_path):
    params = _params(seed=3)
    saved_encoder.save_encoder(str(tmp_path / "enc"), FIELDS, params, extra={"steps": 5})
    fields, loaded = saved_encoder.load_encoder(str(tmp_path / "enc"))
    assert fields == {**FIELDS, "head": "flatten", "activation": "relu"}
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    config = saved_encoder.read_config(str(tmp_path / "enc"))
    assert config["steps"] == 5 and config["image_shape"] == [48, 48, 3]


def test_fields_that_differ_are_all_named():
    saved_encoder.check_same_encoder(FIELDS, {**FIELDS, "head": "flatten"}, "d")  # defaults
    with pytest.raises(ValueError, match=r"the encoder saved in d is not the one this model "
                                         r"builds: channels is \[4, 4\] there, \[8, 8\] here; "
                                         r"activation is relu there, elu here"):
        saved_encoder.check_same_encoder(FIELDS, {**FIELDS, "channels": (8, 8),
                                                  "activation": "elu"}, "d")
    with pytest.raises(ValueError, match=r"unknown encoder fields \['width'\]"):
        saved_encoder.encoder_fields(width=3)


def test_wrong_directories_and_shapes_are_refused_with_what_they_hold(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no pretrained ConvEncoder here \(config.json "
                                                r"missing\); pass the workdir of "
                                                r"experiments.probe_encoder"):
        saved_encoder.load_encoder(str(tmp_path / "nowhere"))
    saved_encoder.save_encoder(str(tmp_path / "probe" / "encoder"), FIELDS, _params())
    with pytest.raises(FileNotFoundError, match=r"the encoder is in its encoder/ subdirectory"):
        saved_encoder.load_encoder(str(tmp_path / "probe"))
    prior = write_initial_prior(str(tmp_path / "prior"), {"action_dim": 2, "hidden": [4]})
    with pytest.raises(ValueError, match=r"holds a 'flow prior' run, not a ConvEncoder \(config.kind='encoder', "
                                         r"written by experiments.probe_encoder\)"):
        saved_encoder.load_encoder(prior)
    with pytest.raises(ValueError, match=r"reads \(48, 48, 3\) images; this model's are "
                                         r"\(64, 64, 3\)"):
        saved_encoder.load_encoder(str(tmp_path / "probe" / "encoder"), (64, 64, 3))
    with pytest.raises(ValueError, match=r"the parameters given are not those of ConvEncoder"):
        saved_encoder.save_encoder(str(tmp_path / "bad"), FIELDS, _params(features=4))
    assert not (tmp_path / "bad" / "config.json").exists()
