"""The process frame: the `floodgate` command, gunicorn configuration, GC tuning."""
