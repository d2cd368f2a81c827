"""Artifacta Box: the Artifacta v1 artifact-store API as one self-hosted executable."""

__version__ = "0.1.0"
