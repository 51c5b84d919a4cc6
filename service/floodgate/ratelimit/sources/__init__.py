"""Policy sources: `base` (the protocols), `file` (a YAML file), `redis` (the operator's feed)."""
