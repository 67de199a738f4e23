"""Pieces every emulated service shares: request routing from botocore's models, errors, settings."""
