"""Vertex AI's published REST schema (the vendored discovery-document slices here) and the walker
that applies it as Google's API front end does: ``walker.py``."""
