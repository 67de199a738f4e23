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
