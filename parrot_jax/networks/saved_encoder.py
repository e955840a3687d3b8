"""An image encoder saved on its own, to start another model from it.

    save_encoder("runs/probe/encoder", fields, params)     # fields: ConvEncoder's
    fields, params = load_encoder("runs/probe/encoder")
    check_same_encoder(fields, flow_encoder_fields, "runs/probe/encoder")

A directory holds ``config.json`` (``{"kind": "encoder", "encoder": FIELDS}``, every
``ConvEncoder`` field spelled out) and an Orbax checkpoint of the encoder's parameters
(the tree ``ConvEncoder(**FIELDS).init`` makes: ``conv0``, ..., ``fc0``, ..., ``out``).
``experiments.probe_encoder`` writes one (an encoder trained on the simulator's positions
of the gripper and the objects); ``experiments.train_prior --config.encoder_init=DIR``
starts the flow's encoder from it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from parrot_jax.networks.encoder import ConvEncoder
from parrot_jax.pretrained import saved
from parrot_jax.run_config import CONFIG_FILE

KIND = "encoder"
WRITTEN_BY = "experiments.probe_encoder (its WORKDIR/encoder)"
IMAGE_SHAPE = (48, 48, 3)


def encoder_fields(**fields) -> dict[str, Any]:
    """Every ``ConvEncoder`` field, ``fields`` over the defaults, sequences as lists (the
    form saved and compared); ValueError naming unknown fields."""
    names = [f.name for f in dataclasses.fields(ConvEncoder) if f.name not in ("parent", "name")]
    unknown = set(fields) - set(names)
    if unknown:
        raise ValueError(f"unknown encoder fields {sorted(unknown)}; expected ConvEncoder's "
                         f"{names}")
    module = _module(fields)
    values = {name: getattr(module, name) for name in names}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _module(fields: Mapping[str, Any]) -> ConvEncoder:
    return ConvEncoder(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def save_encoder(directory: str, fields: Mapping[str, Any], params: Any,
                 extra: Mapping[str, Any] | None = None, image_shape=IMAGE_SHAPE) -> str:
    """Writes ``params`` (a ``ConvEncoder``'s on ``image_shape`` images, without the
    ``"params"`` wrapper), its fields and ``extra`` (how it was trained) to ``directory``;
    returns it."""
    fields = encoder_fields(**fields)
    expected = jax.eval_shape(lambda: _init(fields, image_shape))
    got = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), params)
    if jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), expected) != got:
        raise ValueError(f"the parameters given are not those of ConvEncoder({fields})")
    return saved.write_initial(directory, {"kind": KIND, "encoder": fields,
                                           "image_shape": list(image_shape),
                                           **dict(extra or {})}, params)


def read_config(directory: str) -> dict[str, Any]:
    """The saved encoder's ``config.json`` (its fields completed: ``encoder_fields``);
    FileNotFoundError or ValueError saying what ``directory`` holds instead."""
    if (not os.path.exists(os.path.join(directory, CONFIG_FILE))
            and os.path.exists(os.path.join(directory, "encoder", CONFIG_FILE))):
        raise FileNotFoundError(f"{directory}: the encoder is in its encoder/ subdirectory; "
                                f"pass {directory}/encoder")
    config = saved.read_config(directory, KIND, "ConvEncoder", WRITTEN_BY)
    return {**config, "encoder": encoder_fields(**config["encoder"])}


def load_encoder(directory: str, image_shape=IMAGE_SHAPE) -> tuple[dict[str, Any], Any]:
    """``(fields, params)`` of the encoder saved in ``directory``, which must have been
    trained on ``image_shape`` images; FileNotFoundError or ValueError saying what the
    directory holds instead."""
    from parrot_jax import checkpoint

    config = read_config(directory)
    fields = config["encoder"]
    if tuple(config["image_shape"]) != tuple(image_shape):
        raise ValueError(f"the encoder saved in {directory} reads {tuple(config['image_shape'])} "
                         f"images; this model's are {tuple(image_shape)}")
    abstract = jax.eval_shape(lambda: _init(fields, image_shape))
    params, _ = checkpoint.load_params(os.path.join(directory, checkpoint.DIRECTORY), abstract)
    return fields, params


def check_same_encoder(saved: Mapping[str, Any], wanted: Mapping[str, Any],
                       directory: str) -> None:
    """ValueError naming every field where the saved encoder differs from the one wanted."""
    saved, wanted = encoder_fields(**saved), encoder_fields(**wanted)
    differ = {k: (saved[k], wanted[k]) for k in wanted if saved[k] != wanted[k]}
    if differ:
        raise ValueError(f"the encoder saved in {directory} is not the one this model builds: "
                         + "; ".join(f"{k} is {s} there, {w} here" for k, (s, w) in differ.items()))


def _init(fields: Mapping[str, Any], image_shape):
    images = jnp.zeros((1,) + tuple(image_shape), jnp.uint8)
    return _module(fields).init(jax.random.key(0), images)["params"]
