"""Prior datasets (collection, on-disk format, reader), batch sampling and replay."""
