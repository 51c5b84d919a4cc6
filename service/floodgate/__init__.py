"""Floodgate: a fast FastAPI + SQLModel service with every production concern switched on."""

__version__ = "0.1.0"
