"""Reference servers ("anchors") measured side by side with Floodgate in every benchmark run.

Each is as small as the pattern it stands for allows; they run from the separate bench venv
(`.tools/bench-venv`, pinned by `requirements.txt`), one uvicorn worker,
same loop and HTTP parser as Floodgate.
"""
