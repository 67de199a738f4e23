"""Downloading a session's files: both prefixes, only this session's, never outside the download folder."""
from __future__ import annotations

import pytest

from helpers import config, outputs, stack
from helpers.errors import WorkshopError
from tests.support.calls import counting_calls


@pytest.fixture
def deployed(local_env):
    settings = config.load()
    stack.deploy_stack(settings, progress=False)
    return settings


def test_download_fetches_session_and_output_files_of_that_session_only(deployed, tmp_path):
    settings = deployed
    s3 = local_env_client = None  # noqa: F841 (clarity: everything goes through helpers' clients)
    from helpers import aws

    s3 = aws.client("s3", settings)
    bucket = stack.stack_outputs(settings)["BucketName"]
    s3.put_object(Bucket=bucket, Key="sessions/alice/s1/hello.py", Body=b'print("hello")\n')
    s3.put_object(Bucket=bucket, Key="outputs/20261126_120000/alice/s1/hello.py", Body=b'print("hello")\n')
    s3.put_object(Bucket=bucket, Key="sessions/bob/s1/secret.txt", Body=b"bob's")
    s3.put_object(Bucket=bucket, Key="outputs/20261126_120000/bob/s1/secret.txt", Body=b"bob's")
    # Actor "x", session "alice", folder "s1": its key contains "/alice/s1/" but is not alice's.
    s3.put_object(Bucket=bucket, Key="outputs/20261126_120000/x/alice/s1/other.txt", Body=b"x's")

    with counting_calls(settings, "cloudformation") as calls:
        df = outputs.download_session(settings, "alice", "s1", dest=tmp_path)
    assert calls["DescribeStacks"] == 1  # the bucket is resolved once, not once per step
    assert sorted(df["kind"]) == ["output", "session"]
    assert set(df["file"]) == {"hello.py"}
    for path in df["local_path"]:
        assert open(path).read() == 'print("hello")\n'
    assert not any("bob" in key or "/x/" in key for key in df["s3_key"])


def test_the_agents_own_state_is_not_downloaded_as_a_session_file_unless_asked(deployed, tmp_path):
    from helpers import aws

    s3 = aws.client("s3", deployed)
    bucket = stack.stack_outputs(deployed)["BucketName"]
    s3.put_object(Bucket=bucket, Key="sessions/carol/s1/app.py", Body=b"x = 1\n")
    s3.put_object(Bucket=bucket, Key="sessions/carol/s1/.claude/transcripts/w/abc/main/0001.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=bucket, Key="sessions/carol/s1/.claude/conversation.json", Body=b"{}")
    assert list(outputs.download_session(deployed, "carol", "s1", dest=tmp_path / "plain")["file"]) == ["app.py"]
    everything = outputs.download_session(deployed, "carol", "s1", dest=tmp_path / "all", include_agent_state=True)
    assert set(everything["file"]) == {"app.py", ".claude/transcripts/w/abc/main/0001.jsonl",
                                       ".claude/conversation.json"}


@pytest.mark.parametrize("bad", ["../alice", "a/b", "", "..", "john.doe", "a\nb"])
def test_ids_that_could_escape_are_refused(bad):
    with pytest.raises(WorkshopError, match="not a valid id"):
        outputs.session_objects(config.load(target="local"), bad, "s1")
