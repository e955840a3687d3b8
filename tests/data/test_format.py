"""list_shards: finished shard directories only, whatever else the directory holds."""

import os

from parrot_jax.data import format as fmt


def test_list_shards_ignores_temporary_and_foreign_entries(tmp_path):
    shards = tmp_path / fmt.SHARDS
    for name in ("shard-00002", "shard-00000", ".shard-00001.tmp", "tmp-xyz", "shard-0000a"):
        os.makedirs(shards / name)
    (shards / "shard-00003").write_text("a file, not a shard directory")
    found = fmt.list_shards(str(tmp_path))
    assert list(found) == [0, 2]
    assert found[2] == str(shards / "shard-00002")


def test_list_shards_of_a_missing_dataset_is_empty(tmp_path):
    assert fmt.list_shards(str(tmp_path / "nothing")) == {}
