"""Sotto host tools: frame verification, receiver, provisioning and flashing."""

__version__ = "0.1.0"
