"""Which Claude Code conversation an invocation continues, and where its transcript is kept.

Per (actor, session) the agent keeps one Claude conversation. Its transcript is mirrored to S3
through the SDK's SessionStore (agent/transcripts.py), and a small pointer names the Claude
session id to resume. The pointer is kept twice: beside the workspace (fast; survives the
microVM only on session storage) and in S3 (survives everything). The next invocation resumes
that id; the SDK then rebuilds the transcript from S3, in a fresh process too.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from claude_agent_sdk import project_key_for_directory

from .transcripts import S3SessionStore

log = logging.getLogger("agent.conversation")
# One runtime session holds one project: its transcripts are stored under this key whatever the
# workspace's path (the path may change between microVMs: the emulator's do, and so does a new
# WORKSPACE_ROOT or turning session storage on), so a moved workspace still finds its conversation.
PROJECT_KEY = "workspace"


class OneProject:
    """A SessionStore view that files every key under PROJECT_KEY, and keeps a local copy when resuming.

    When the SDK resumes from the store, Claude Code works on a temporary copy of the transcript
    that is removed afterwards; `local_copy` (the file Claude Code itself would have written) is
    kept up to date instead, so the transcript can be looked at inside the session.
    """

    def __init__(self, store: S3SessionStore, local_copy: Path | None = None):
        self.store = store
        self.local_copy = local_copy
        self.materialized = False  # the SDK resumed from the store (not from Claude Code's own file)
        self.warnings: list[str] = []

    @staticmethod
    def _pin(key: dict) -> dict:
        return {**key, "project_key": PROJECT_KEY}

    def _write_local(self, entries: list, mode: str) -> None:
        if self.local_copy is None:
            return
        try:
            self.local_copy.parent.mkdir(parents=True, exist_ok=True)
            with self.local_copy.open(mode) as f:
                for entry in entries:
                    f.write(json.dumps(entry, separators=(",", ":")) + "\n")
        except OSError as exc:  # the copy is for people to look at; S3 keeps the conversation
            log.warning("could not keep the local transcript copy %s: %s", self.local_copy, exc)

    async def append(self, key: dict, entries: list) -> None:
        await self.store.append(self._pin(key), entries)
        if key.get("subpath") is None and self.materialized:
            self._write_local(entries, "a")

    async def load(self, key: dict):
        main = key.get("subpath") is None
        on_disk = main and self.local_copy is not None and self.local_copy.exists()
        try:
            entries = await self.store.load(self._pin(key))
        except Exception as exc:  # boto3 raises several types; all mean the store could not answer
            if not on_disk:
                raise
            # Claude Code's own file is still here (session storage, or the same microVM): resume from it.
            self.warnings.append(f"could not read the transcript from S3 ({exc}); continuing from the copy on "
                                 f"session storage ({self.local_copy})")
            return None
        if entries is None and on_disk:
            self.warnings.append("the transcript is missing from S3; continuing from the copy on disk "
                                 f"({self.local_copy}) and mirroring from here on")
        if entries is not None and main:
            self.materialized = True
            self._write_local(entries, "w")
        return entries

    async def list_sessions(self, project_key: str):
        return await self.store.list_sessions(PROJECT_KEY)

    async def list_subkeys(self, key: dict):
        return await self.store.list_subkeys(self._pin(key))


@dataclass
class Plan:
    """What this invocation's run starts from."""

    resume: str | None = None  # the Claude session id to continue, or None for a new conversation
    store: OneProject | None = None
    transcript_url: str | None = None
    warnings: list[str] = field(default_factory=list)


class Conversation:
    """The pointer to one (actor, session)'s Claude conversation, locally and in S3."""

    def __init__(self, actor_id: str, session_id: str, state_root: Path, bucket: str | None, s3,
                 session_prefix: str, config_dir: Path):
        self.bucket = bucket
        self.s3 = s3
        self.prefix = f"{session_prefix}.claude/"
        self.pointer_key = f"{self.prefix}conversation.json"
        self.local_pointer = Path(state_root) / ".conversations" / actor_id / f"{session_id}.json"
        self.config_dir = Path(config_dir)

    def _read_pointer(self, warnings: list[str]) -> dict | None:
        try:
            return json.loads(self.local_pointer.read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            warnings.append(f"the local conversation pointer {self.local_pointer} is unreadable ({exc}); "
                            "reading it from S3")
        if not self.bucket or self.s3 is None:
            return None
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.pointer_key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # botocore raises several types; all mean S3 could not say
            warnings.append(f"could not read s3://{self.bucket}/{self.pointer_key} ({exc}); "
                            "starting a new Claude conversation")
            return None
        try:
            return json.loads(body)
        except ValueError:
            warnings.append(f"s3://{self.bucket}/{self.pointer_key} is not JSON; starting a new Claude conversation")
            return None

    def plan(self, cwd: Path) -> Plan:
        plan = Plan()
        pointer = self._read_pointer(plan.warnings)
        resume = (pointer or {}).get("claude_session_id")
        local_copy = None
        if resume:
            plan.resume = resume
            local_copy = self.config_dir / "projects" / project_key_for_directory(str(cwd)) / f"{resume}.jsonl"
        on_disk = local_copy is not None and local_copy.exists()
        if self.bucket and self.s3 is not None:
            store = S3SessionStore(self.s3, self.bucket, f"{self.prefix}transcripts/")
            plan.store = OneProject(store, local_copy=local_copy)
            plan.transcript_url = f"s3://{self.bucket}/{self.prefix}transcripts/{PROJECT_KEY}/"
            if resume and not on_disk:
                # Claude Code refuses to resume a conversation it cannot find: check before asking it to.
                try:
                    found = store.exists({"project_key": PROJECT_KEY, "session_id": resume})
                except Exception as exc:  # botocore raises several types; all mean S3 could not say
                    found = False
                    plan.warnings.append(f"could not look for the transcript in S3 ({exc})")
                if not found:
                    plan.warnings.append(f"the transcript of Claude conversation {resume} is neither in "
                                         f"{plan.transcript_url} nor on disk: starting a new conversation")
                    plan.resume = None
        elif resume:
            # No bucket: only a transcript still on this disk (session storage, or the same microVM) resumes.
            if not on_disk:
                plan.warnings.append("no OUTPUT_BUCKET_NAME and no local transcript: starting a new Claude conversation")
                plan.resume = None
        return plan

    def compact(self, plan: Plan, claude_session_id: str | None, warnings: list[str]) -> None:
        """Fold the transcript's many small parts into one, so the next resume reads few objects."""
        if plan.store is None or not claude_session_id:
            return
        try:
            plan.store.store.compact({"project_key": PROJECT_KEY, "session_id": claude_session_id})
        except Exception as exc:  # botocore raises several types; the parts stay as they were, still loadable
            warnings.append(f"could not compact the transcript in {plan.transcript_url}: {exc}")

    def remember(self, claude_session_id: str | None, warnings: list[str]) -> None:
        """Record the conversation's id after a run, for the next invocation."""
        if not claude_session_id:
            return
        doc = json.dumps({"claude_session_id": claude_session_id, "project_key": PROJECT_KEY})
        try:
            self.local_pointer.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.local_pointer.with_suffix(".tmp")
            tmp.write_text(doc)
            os.replace(tmp, self.local_pointer)
        except OSError as exc:
            warnings.append(f"could not write the local conversation pointer {self.local_pointer}: {exc}")
        if self.bucket and self.s3 is not None:
            try:
                self.s3.put_object(Bucket=self.bucket, Key=self.pointer_key, Body=doc.encode(),
                                   ContentType="application/json")
            except Exception as exc:  # botocore raises several types; the next microVM would start afresh
                warnings.append(f"could not save the conversation pointer to s3://{self.bucket}/{self.pointer_key}: "
                                f"{exc}; a new microVM will start a new Claude conversation")
