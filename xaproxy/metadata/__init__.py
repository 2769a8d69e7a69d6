"""Table definitions read from the shards' information_schema (model.py: plain data; reader.py: the reading)."""
