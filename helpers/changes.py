"""What a create, update or delete did, as one typed value instead of a word per helper."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Change(str, enum.Enum):
    """What a helper did to a resource. A str, so `change == "deleted"` keeps working for callers that compare."""

    CREATED = "created"
    UPDATED = "updated"
    REPLACED = "replaced"  # deleted (it could not be updated) and created again
    UNCHANGED = "unchanged"  # already as asked: success, and nothing was touched
    DELETED = "deleted"
    ALREADY_GONE = "already gone"  # "not found" on delete is success

    @property
    def changed(self) -> bool:
        return self not in (Change.UNCHANGED, Change.ALREADY_GONE)

    def __str__(self) -> str:
        return self.value

    # A bare enum repr (<Change.UNCHANGED: 'unchanged'>) means nothing to a reader of a notebook.
    def __repr__(self) -> str:
        return repr(self.value)


# Enum reserves _sunder_ names inside its class body, so Jupyter's display hook is attached after it.
Change._repr_markdown_ = lambda self: f"**{self.value}**"


@dataclass(frozen=True)
class Deleted:
    """What a delete removed: its change, and the ids of what it deleted (empty when it was already gone)."""

    change: Change
    ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, ids) -> "Deleted":
        ids = tuple(ids)
        return cls(Change.DELETED if ids else Change.ALREADY_GONE, ids)

    def __bool__(self) -> bool:
        return self.change is Change.DELETED

    def __str__(self) -> str:
        return f"{self.change}: {', '.join(self.ids)}" if self.ids else str(self.change)

    def _repr_markdown_(self) -> str:
        return f"**{self.change}**" + (": " + ", ".join(f"`{i}`" for i in self.ids) if self.ids else "")
