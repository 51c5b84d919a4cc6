"""Side-by-side load benchmarks: Floodgate scenarios against reference servers, in one run.

Run `make bench` (full) or `.venv/bin/python -m bench.run --quick` (CI smoke); see BENCHMARKS.md.
"""
