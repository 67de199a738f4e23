"""A session's workspace directory and its copy in S3: restore at the start, upload what changed at the end.

A manifest of each file's size, mtime and S3 ETag (kept beside, not inside, the workspace) lets the
agent skip unchanged files in both directions, so its overhead grows with what changed, not with
how many files the session holds. A file whose upload failed stays out of the manifest and is
uploaded on the next try.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import posixpath
import re
import shlex
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from . import denials
from .request import check_actor_id, check_session_id

log = logging.getLogger("agent.workspace")

# Claude Code's own per-project state and caches are not the user's work.
SKIP_DIRS = frozenset({".claude", "__pycache__", ".git", "node_modules"})
_WORKERS = 8


class UnsafePath(ValueError):
    """A path or key that would leave the session's workspace or S3 prefix."""


@dataclass
class SyncReport:
    restored: list[str] = field(default_factory=list)
    uploaded: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    s3_calls: int = 0


def safe_relative(rel: str) -> PurePosixPath:
    """`rel` as a path that stays inside its base, or UnsafePath."""
    # Check the raw segments: PurePosixPath would quietly collapse "a//b" and "./a".
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in rel.split("/")):
        raise UnsafePath(f"{rel!r} would leave the session's workspace")
    return PurePosixPath(rel)


# Claude Code's file tools and the input keys that name what they touch (its tool schemas, as sent to the
# model: Read/Write/Edit/MultiEdit `file_path`, NotebookEdit `notebook_path`, Glob/Grep/LS `path`).
_PATH_KEYS = ("file_path", "notebook_path", "path")
_FILE_TOOLS = frozenset({"Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Glob", "Grep", "LS"})
# Where a shell command may name absolute paths outside the workspace: the system's programs and
# libraries (read and run, never the user's data), and the few device files commands write to.
SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/", "/etc/alternatives/")
SYSTEM_FILES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero",
                          "/dev/urandom", "/dev/random", "/usr/bin/env", "/bin/sh", "/bin/bash"})
# Shell words that reach outside the working directory without naming a path the check can see:
# the home directory, the previous directory, a workspace of another session through a variable.
_SHELL_ESCAPES = re.compile(r"(^|[^\w])~|\$\{?(HOME|OLDPWD|TMPDIR|WORKSPACE_ROOT|CLAUDE_CONFIG_DIR|"
                            r"SESSION_STORAGE_PATH|PWD)\b|\bcd\s*($|[;&|])|\bpushd\b|\bpopd\b")
_GLOB_CHARS = re.compile(r"[*?\[{]")


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _resolve(value: str, cwd: str) -> str:
    """`value` as Claude Code's tools read it (relative to cwd) with `..` and symlinks resolved."""
    return os.path.realpath(posixpath.join(cwd, os.path.expanduser(value) if value.startswith("~") else value))


def _path_problem(value: str, cwd: str, what: str) -> str | None:
    if "\x00" in value:
        return f"{what} {value!r} holds a NUL byte"
    resolved = _resolve(value, cwd)
    if not _inside(resolved, cwd):
        return f"{what} {value!r} resolves to {resolved}, outside the session's workspace {cwd}"
    return None


def _glob_base(pattern: str) -> str:
    """The part of a glob pattern before its first wildcard: the directory it can reach at most."""
    m = _GLOB_CHARS.search(pattern)
    head = pattern if m is None else pattern[:m.start()]
    return head.rsplit("/", 1)[0] if "/" in head else "."


def confine(tool: str, tool_input: dict, workspace: Path) -> str | None:
    """Why this tool call would read or write outside `workspace` (None when it stays inside).

    File tools are held exactly: every path they name is resolved as the tool will open it (relative
    to the workspace, `..` and symlinks followed) and must stay inside. Bash is checked by what its
    command says: absolute paths outside the workspace (except the system's programs), `..`, `~`,
    the home directory and similar variables, and a bare `cd` are refused. A command that builds a
    path at run time (a script, `python -c`) is beyond what reading it can tell; see the README.
    """
    cwd = os.path.realpath(workspace)
    if tool in _FILE_TOOLS:
        for key in _PATH_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                problem = _path_problem(value, cwd, f"{tool} {key}")
                if problem:
                    return problem
        pattern = tool_input.get("pattern")
        if tool == "Glob" and isinstance(pattern, str):
            base = posixpath.join(tool_input.get("path") or cwd, _glob_base(pattern))
            if pattern.startswith("/") or ".." in pattern.split("/") or pattern.startswith("~"):
                return _path_problem(base, cwd, "Glob pattern") or f"Glob pattern {pattern!r} climbs out of the workspace"
        return None
    if tool == "Bash":
        return _bash_problem(str(tool_input.get("command") or ""), cwd)
    return None


def _bash_problem(command: str, cwd: str) -> str | None:
    if "\x00" in command:
        return "the command holds a NUL byte"
    m = _SHELL_ESCAPES.search(command)
    if m:
        return (f"the command reaches outside the workspace through {m.group(0).strip()!r}; "
                "name files relative to the workspace")
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError as exc:  # unbalanced quotes: what the shell would see cannot be told
        return f"the command cannot be read ({exc}); quote it plainly"
    redirect = False
    for word in words:
        if word and set(word) <= set("<>&|;"):
            redirect = ">" in word  # the next word is a file the shell writes
            continue
        target, redirect = redirect, False
        if target and word.startswith("/") and not _inside(os.path.realpath(word), cwd) and word not in SYSTEM_FILES:
            return f"the command writes to {word!r}, outside the session's workspace {cwd}"
        # A path may follow '=' (--output=/x, VAR=/x) or ':' (PATH-like lists) inside one word.
        for part in re.split(r"[=:,]", word):
            if not part:
                continue
            if ".." in part.split("/"):
                return f"the command climbs out of the workspace with {part!r}; name files relative to the workspace"
            if part.startswith("/"):
                resolved = os.path.realpath(part)
                if _inside(resolved, cwd) or resolved in SYSTEM_FILES or part in SYSTEM_FILES:
                    continue
                if any(resolved.startswith(p) or part.startswith(p) for p in SYSTEM_PREFIXES):
                    continue
                return f"the command names {part!r}, outside the session's workspace {cwd}"
    return None


# Bash, held at the OS level: each command runs in a mount namespace of its own (util-linux unshare;
# a user namespace too when not root) where every mount is read-only, the workspace root, HOME and
# Claude Code's state are empty tmpfs (other actors' workspaces vanish), /tmp, /var/tmp and /dev/shm
# are private tmpfs, and only the caller's workspace is bound back, writable. The workspace is opened
# before it is covered and bound back from that descriptor (--no-canonicalize, or mount(8) would
# resolve /proc/self/fd/3 to the now-covered path). A mount whose remount fails stays as it was: the
# probe below, and the proof (proof/agent_input.py), check what the boundary really holds.
_ISOLATE = r"""
set -eu
ws=$1; cmd=$2; shift 2
start=$(pwd -P)
exec 3<"$ws"
mount -n --make-rprivate /
mount -n --rbind / /
cd /
awk '{print $5, $6}' /proc/self/mountinfo | while read -r mp opts; do
  case "$mp" in /proc|/proc/*|/sys|/sys/*) continue ;; esac
  keep=$(printf %s "$opts" | tr , '
' | grep -Ex 'nosuid|nodev|noexec|noatime|nodiratime|relatime' | paste -sd, -)
  mount -n -o "remount,bind,ro${keep:+,$keep}" "$mp" 2>/dev/null || true
done
for d in /tmp /var/tmp /dev/shm "$@"; do
  [ -d "$d" ] || mkdir -p "$d" 2>/dev/null || continue
  mount -n -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p "$ws"
mount -n --no-canonicalize --bind /proc/self/fd/3 "$ws"
mount -n -o remount,bind,rw "$ws"
exec 3<&-
cd "$start" 2>/dev/null || cd "$ws"
if command -v bash >/dev/null; then exec bash -c "$cmd"; else exec sh -c "$cmd"; fi
"""


def isolated_command(command: str, workspace: Path, hidden: list[Path]) -> str:
    """`command` as Bash should run it: inside the mount namespace above (see _ISOLATE)."""
    userns = ["--user", "--map-root-user"] if os.geteuid() != 0 else []
    # A HOME of "/" (or above /usr) would cover the system itself: such a directory is not covered.
    covered = [p for p in (os.path.realpath(h) for h in hidden) if p != "/" and not "/usr/".startswith(p + "/")]
    return shlex.join(["unshare", *userns, "--mount", "sh", "-c", _ISOLATE, "isolate",
                       os.path.realpath(workspace), command, *covered])


def probe_isolation(root: Path, hidden: list[Path]) -> str | None:
    """Why Bash cannot be isolated on this machine (None when it can): a real run, checked from outside.

    Inside, a command writes to its workspace (must land), beside it and outside the root (must not),
    and reads another workspace (must not see it).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix=".isolation-probe-", dir=root))
    except OSError as exc:
        return f"cannot make a probe directory under {root}: {exc}"
    try:
        ws, other = base / "a" / "s", base / "b" / "s"
        ws.mkdir(parents=True)
        other.mkdir(parents=True)
        secret = uuid.uuid4().hex
        (other / "secret.txt").write_text(secret)
        outside = root.parent / f".isolation-probe-{uuid.uuid4().hex}"
        command = (f"echo in > inside.txt; echo out > {shlex.quote(str(outside))}; "
                   f"echo out > {shlex.quote(str(base / 'beside.txt'))}; cat {shlex.quote(str(other / 'secret.txt'))}")
        try:
            run = subprocess.run(["sh", "-c", isolated_command(command, ws, [root, *hidden])], cwd=ws,
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare could not run: {exc}"
        problems = []
        if not (ws / "inside.txt").exists():
            problems.append("the command could not write its own workspace"
                            + (f" ({run.stderr.strip()[-300:]})" if run.stderr.strip() else ""))
        if outside.exists():
            outside.unlink()
            problems.append("it wrote outside the workspace root")
        if (base / "beside.txt").exists():
            problems.append("it wrote beside its workspace")
        if secret in run.stdout:
            problems.append("it read another workspace")
        return "; ".join(problems) or None
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


class Workspace:
    """One actor's session: a local directory and its prefixes in the output bucket."""

    def __init__(self, root: Path, actor_id: str, session_id: str, bucket: str | None, s3=None,
                 region: str = "us-east-1", page_size: int = 1000):
        self.actor_id = check_actor_id("actor_id", actor_id)
        self.session_id = check_session_id("session_id", session_id)
        self.root = Path(root).resolve()
        self.path = (self.root / actor_id / session_id).resolve()
        if not self.path.is_relative_to(self.root):  # the id checks already forbid it; belt and braces
            raise UnsafePath(f"workspace {self.path} is outside {self.root}")
        self.manifest_path = self.root / ".manifests" / actor_id / f"{session_id}.json"
        self.bucket = bucket
        self.s3 = s3
        self.region = region
        self.page_size = page_size
        self.session_prefix = f"sessions/{actor_id}/{session_id}/"
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, dict] = self._load_manifest()

    # -- manifest --------------------------------------------------------------------------
    def _load_manifest(self) -> dict[str, dict]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("manifest %s is unreadable; every file will count as changed", self.manifest_path)
            return {}

    def _save_manifest(self) -> None:
        self.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest))
        os.replace(tmp, self.manifest_path)

    # -- local files -----------------------------------------------------------------------
    def files(self) -> dict[str, os.stat_result]:
        """Regular files under the workspace by relative POSIX path; symlinks are never followed."""
        found: dict[str, os.stat_result] = {}
        stack = [(self.path, "")]
        while stack:
            directory, prefix = stack.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    rel = f"{prefix}{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in SKIP_DIRS:
                            stack.append((Path(entry.path), rel + "/"))
                    elif entry.is_file(follow_symlinks=False):
                        found[rel] = entry.stat(follow_symlinks=False)
        return found

    def changed_files(self) -> list[str]:
        changed = []
        for rel, st in self.files().items():
            known = self.manifest.get(rel)
            if known is None or known.get("size") != st.st_size or known.get("mtime_ns") != st.st_mtime_ns:
                changed.append(rel)
        return sorted(changed)

    def target(self, rel: str) -> Path:
        path = (self.path / safe_relative(rel)).resolve()
        if not path.is_relative_to(self.path):
            raise UnsafePath(f"{rel!r} resolves outside the workspace")
        return path

    # -- S3 --------------------------------------------------------------------------------
    def restore(self) -> SyncReport:
        """Download the session's files that are missing here or differ from the bucket's copy."""
        report = SyncReport()
        if not self.bucket or self.s3 is None:
            return report
        objects: dict[str, dict] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.session_prefix,
                                       PaginationConfig={"PageSize": self.page_size}):
            report.s3_calls += 1
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    # A "folder" marker (the S3 console's Create folder): no file to restore. Skipping
                    # it silently keeps restore free of warnings, so the session counts as restored.
                    continue
                rel = obj["Key"][len(self.session_prefix):]
                if rel.split("/", 1)[0] in SKIP_DIRS:
                    # Not the user's files: e.g. .claude/ holds Claude Code's transcript (agent/conversation.py),
                    # which the SDK reads itself; a workspace never uploads such folders either.
                    continue
                objects[rel] = obj
        local = self.files()
        wanted = []
        for rel, obj in objects.items():
            try:
                target = self.target(rel)
            except UnsafePath as exc:
                report.warnings.append(f"skipped S3 object {obj['Key']}: {exc}")
                continue
            known = self.manifest.get(rel, {})
            st = local.get(rel)
            if (st is not None and known.get("etag") == obj["ETag"] and known.get("size") == st.st_size
                    and known.get("mtime_ns") == st.st_mtime_ns):
                continue
            wanted.append((rel, obj, target))

        def fetch(item):
            rel, obj, target = item
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            self.s3.download_file(self.bucket, obj["Key"], str(tmp))
            os.replace(tmp, target)
            st = target.stat()
            return rel, {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "etag": obj["ETag"]}

        with ThreadPoolExecutor(_WORKERS) as pool:
            for (rel, _, _), outcome in zip(wanted, pool.map(_capture(fetch), wanted)):
                report.s3_calls += 1
                if isinstance(outcome, Exception):
                    report.warnings.append(f"could not restore {rel} from S3: {outcome}")
                else:
                    self.manifest[outcome[0]] = outcome[1]
                    report.restored.append(rel)
        self._save_manifest()
        return report

    def upload_changes(self, timestamp: dt.datetime | None = None) -> SyncReport:
        """Upload new and changed files to the session prefix and to `outputs/{timestamp}/...`."""
        report = SyncReport()
        changed = self.changed_files()
        if not changed:
            return report
        if not self.bucket or self.s3 is None:
            report.warnings.append(f"{len(changed)} changed file(s) kept locally: no OUTPUT_BUCKET_NAME is set")
            return report
        stamp = (timestamp or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d_%H%M%S")
        outputs_prefix = f"outputs/{stamp}/{self.actor_id}/{self.session_id}/"

        def send(rel: str):
            path = self.target(rel)
            st = path.stat()
            key = self.session_prefix + rel
            with path.open("rb") as f:
                put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=f)
            out_key = outputs_prefix + rel
            self.s3.copy_object(Bucket=self.bucket, Key=out_key, CopySource={"Bucket": self.bucket, "Key": key})
            return rel, st, put["ETag"], key, out_key

        with ThreadPoolExecutor(_WORKERS) as pool:
            for rel, outcome in zip(changed, pool.map(_capture(send), changed)):
                report.s3_calls += 2
                if isinstance(outcome, Exception):
                    if denials.is_access_denied(outcome):
                        report.warnings.append(denials.explain(
                            f"uploading {rel} to s3://{self.bucket} (kept locally, retried next time)",
                            str(outcome), "s3:PutObject"))
                    else:
                        report.warnings.append(
                            f"could not upload {rel} to S3 (kept locally, retried next time): {outcome}")
                    continue
                _, st, etag, key, out_key = outcome
                self.manifest[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "etag": etag}
                report.uploaded.append({
                    "file_name": rel,
                    "s3_url": f"s3://{self.bucket}/{out_key}",
                    "session_s3_url": f"s3://{self.bucket}/{key}",
                    "console_url": self.console_url(out_key),
                    "size": st.st_size,
                })
        self._save_manifest()
        return report

    def console_url(self, key: str) -> str:
        return (f"https://s3.console.aws.amazon.com/s3/object/{self.bucket}"
                f"?region={self.region}&bucketType=general&prefix={quote(key)}")


def _capture(fn):
    """Run fn in a worker, handing its exception back as a value so one failure never hides the rest."""
    def run(item):
        try:
            return fn(item)
        except Exception as exc:  # reported per file by the caller, with the file's name
            return exc
    return run
