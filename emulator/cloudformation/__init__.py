"""The emulator's CloudFormation: moto's, plus the resource types and behaviour it lacks (see hooks.install)."""
from .hooks import install

__all__ = ["install"]
