"""Helpers for the Dockyard vs reference-registry benchmark (`python bench/run.py`)."""
