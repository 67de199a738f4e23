"""AgentCore Runtime's managed session storage: a per-session directory that outlives the session's processes."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .processes import Launch, session_dir_name

STORAGE_IDLE_EXPIRY = 14 * 24 * 3600


class SessionStorage:
    """AgentCore Runtime's managed session storage (preview), as the devguide describes it.

    Rules (devguide: runtime-persistent-filesystems, runtime-filesystem-configurations): a session's
    storage is empty at its first call; it is kept across StopRuntimeSession and idle reclaiming (a new
    microVM of the session finds it as it was left); other sessions never see it; it is reset when the
    session next starts on another version of the runtime, and after 14 days unused.

    A process here cannot mount anything at /mnt, so each mount is a directory of its own,
    `<state>/runtime/session-storage/<runtime id>/<session>/<mount name>`, and the agent is told where:
    environment variables of the runtime whose value is the mount path (or under it) are pointed at
    that directory. The README's table of differences says so.
    """

    def __init__(self, root: Path):
        self.root = root

    def _dirs(self, launch: Launch) -> tuple[Path, Path]:
        base = self.root / launch.runtime_id / session_dir_name(launch.session_id)
        return base, base.with_name(base.name + ".json")

    def mount(self, launch: Launch) -> dict[str, Path]:
        """{mount path: local directory} for a new microVM of this session, reset where the rules say."""
        base, marker = self._dirs(launch)
        try:
            state = json.loads(marker.read_text())
        except (FileNotFoundError, ValueError):
            state = None
        stale = state is None or state.get("version") != launch.version or \
            time.time() - float(state.get("last_used", 0)) > STORAGE_IDLE_EXPIRY
        if stale and base.exists():
            shutil.rmtree(base)
        mounts = {}
        for path in launch.session_storage:
            local = base / path.rstrip("/").rsplit("/", 1)[-1]
            local.mkdir(parents=True, exist_ok=True)
            mounts[path.rstrip("/")] = local
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"version": launch.version, "last_used": time.time(),
                                      "session_id": launch.session_id}))
        return mounts

    def forget_runtime(self, runtime_id: str) -> None:
        shutil.rmtree(self.root / runtime_id, ignore_errors=True)


def mapped_environment(environment: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    """The runtime's variables that name a mount path (or a path under it), pointed at its local directory."""
    out = {}
    for name, value in environment.items():
        for mount, local in mounts.items():
            if value.rstrip("/") == mount or value.startswith(mount + "/"):
                out[name] = str(local) + value.rstrip("/")[len(mount):]
    return out
