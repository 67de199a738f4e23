"""The session workspace and its S3 copy: paginated restore, changed-only upload, nothing leaves its prefix."""
from __future__ import annotations

import os
import uuid

import pytest

from agent.request import BadRequest
from agent.workspace import UnsafePath, Workspace, safe_relative


@pytest.fixture
def bucket(emulator):
    name = f"ws-test-{uuid.uuid4().hex[:8]}"
    emulator.client("s3").create_bucket(Bucket=name)
    return name


def ws(tmp_path, emulator, bucket, actor="amy", session="s1", root="root", **kw):
    return Workspace(tmp_path / root, actor, session, bucket, emulator.client("s3"), **kw)


def test_restore_reads_every_page_of_the_session_prefix(tmp_path, emulator, bucket):
    s3 = emulator.client("s3")
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"sessions/amy/s1/dir/f{i}.txt", Body=f"{i}".encode())
    s3.put_object(Bucket=bucket, Key="sessions/amy/s10/other.txt", Body=b"not mine")
    w = ws(tmp_path, emulator, bucket, page_size=2)
    report = w.restore()
    assert sorted(report.restored) == [f"dir/f{i}.txt" for i in range(5)]
    assert (w.path / "dir" / "f3.txt").read_text() == "3"
    assert not (w.path / "other.txt").exists()
    again = w.restore()
    assert again.restored == [] and again.s3_calls == 3  # three list pages, no downloads


def test_keys_that_would_climb_out_of_the_workspace_are_skipped(tmp_path, emulator, bucket):
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/../../escape.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/ok.txt", Body=b"ok")
    w = ws(tmp_path, emulator, bucket)
    report = w.restore()
    assert report.restored == ["ok.txt"]
    assert any("escape.txt" in warning for warning in report.warnings)
    assert not any(p.name == "escape.txt" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../b", "", "a//b", "a\\..\\b"])
def test_unsafe_relative_paths_are_refused(rel):
    with pytest.raises(UnsafePath):
        safe_relative(rel)


@pytest.mark.parametrize("actor,session", [("..", "s"), ("a/b", "s"), ("a", "../s"), ("a", "")])
def test_a_workspace_refuses_ids_that_climb_out(tmp_path, actor, session):
    with pytest.raises(BadRequest):
        Workspace(tmp_path, actor, session, None)


def test_only_new_or_changed_files_are_uploaded_and_to_both_prefixes(tmp_path, emulator, bucket):
    w = ws(tmp_path, emulator, bucket)
    (w.path / "a.txt").write_text("a")
    (w.path / "b.txt").write_text("b")
    first = w.upload_changes()
    assert sorted(f["file_name"] for f in first.uploaded) == ["a.txt", "b.txt"]
    keys = {o["Key"] for o in emulator.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"sessions/amy/s1/a.txt", "sessions/amy/s1/b.txt"} <= keys
    assert any(k.startswith("outputs/") and k.endswith("/amy/s1/a.txt") for k in keys)
    assert w.upload_changes().uploaded == []
    (w.path / "b.txt").write_text("bb")
    assert [f["file_name"] for f in w.upload_changes().uploaded] == ["b.txt"]


def test_restored_files_are_not_uploaded_again(tmp_path, emulator, bucket):
    first = ws(tmp_path, emulator, bucket, root="one")
    (first.path / "kept.txt").write_text("kept")
    first.upload_changes()
    second = ws(tmp_path, emulator, bucket, root="two")
    assert second.restore().restored == ["kept.txt"]
    assert second.upload_changes().uploaded == []


def test_symlinks_are_neither_followed_nor_uploaded(tmp_path, emulator, bucket):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    w = ws(tmp_path, emulator, bucket)
    os.symlink(secret, w.path / "link.txt")
    os.symlink(tmp_path, w.path / "linkdir")
    assert w.upload_changes().uploaded == []


def test_claude_codes_own_state_is_not_uploaded(tmp_path, emulator, bucket):
    w = ws(tmp_path, emulator, bucket)
    (w.path / ".claude").mkdir()
    (w.path / ".claude" / "settings.local.json").write_text("{}")
    assert w.changed_files() == []


def test_folder_keys_made_by_the_s3_console_are_skipped_silently(tmp_path, emulator, bucket):
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/", Body=b"")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/data/", Body=b"")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/data/input.csv", Body=b"a,b\n")
    w = ws(tmp_path, emulator, bucket)
    report = w.restore()
    assert report.warnings == []  # no warnings, so the agent marks the session restored
    assert report.restored == ["data/input.csv"]
    assert (w.path / "data" / "input.csv").read_text() == "a,b\n"


def test_the_transcript_kept_under_the_session_prefix_is_not_restored_as_a_workspace_file(tmp_path, emulator, bucket):
    s3 = emulator.client("s3")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/.claude/conversation.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/.claude/transcripts/workspace/x/main/1.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=bucket, Key="sessions/amy/s1/hello.py", Body=b"print(1)\n")
    w = ws(tmp_path, emulator, bucket)
    report = w.restore()
    assert report.restored == ["hello.py"] and report.warnings == []
    assert not (w.path / ".claude").exists()
