"""The workshop's library: every notebook cell and the command line call into these modules."""
from .config import Settings, load
from .errors import WorkshopError
from .recording import record

__all__ = ["Settings", "WorkshopError", "load", "record"]
