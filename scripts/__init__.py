"""Developer tools run from the repository root (the shell scripts here are `make` helpers)."""
