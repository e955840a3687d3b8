"""Prior datasets (collection, on-disk format, reader), batch sampling and replay.

``load_dataset`` opens datasets written by ``experiments.collect_data``; batch sampling
(``sampling``), device prefetch (``prefetch``) and the RL replay buffer (``replay``) are
in their own modules (imported on demand, so collection workers never load JAX).
"""

from parrot_jax.data.dataset import Dataset, load_dataset
from parrot_jax.data.format import DatasetError

__all__ = ["Dataset", "DatasetError", "load_dataset"]
