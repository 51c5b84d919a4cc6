"""The database frame: engine and pools, hot reads, column types, integrity errors, migrations."""
