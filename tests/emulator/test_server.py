"""The endpoint itself: health, routing by signature, clean stop, a clear error for a busy port."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.support.emulator import ROOT, EmulatorProcess


def test_health_lists_every_service(emulator):
    doc = json.loads(urllib.request.urlopen(f"{emulator.endpoint}/_emulator/health").read())
    assert doc["status"] == "running"
    for name in ("cloudformation", "s3", "ssm", "ecr", "iam", "sts", "logs", "codebuild",
                 "bedrock-agentcore", "bedrock-agentcore-control", "bedrock-runtime"):
        assert name in doc["services"]


def test_requests_are_routed_by_the_signing_service(emulator):
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="routing-check-bucket")
    assert "routing-check-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    ssm = emulator.client("ssm")
    ssm.put_parameter(Name="/routing/check", Value="v", Type="String", Overwrite=True)
    assert ssm.get_parameter(Name="/routing/check")["Parameter"]["Value"] == "v"
    assert emulator.client("sts").get_caller_identity()["Account"] == "123456789012"


def test_an_unimplemented_agentcore_operation_is_a_client_error_not_a_retry(emulator):
    client = emulator.client("bedrock-agentcore-control")
    with pytest.raises(ClientError) as err:
        client.list_gateways()
    assert err.value.response["Error"]["Code"] == "UnknownOperationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_busy_port_gives_one_line_naming_it(emulator, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", str(emulator.port), "--state-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(emulator.port) in lines[0] and "in use" in lines[0]


def test_sigterm_stops_it_cleanly(tmp_path):
    emu = EmulatorProcess(tmp_path).start()
    assert emu.stop() == 0
    assert "emulator: stopped" in emu.log_path.read_text()
    assert not (tmp_path / "emulator.pid").exists()


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_bad_content_length_is_an_aws_shaped_400(emulator, length):
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(emulator.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.putrequest("POST", "/runtimes", skip_accept_encoding=True)
        conn.putheader("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/"
                                        "bedrock-agentcore/aws4_request, SignedHeaders=host, Signature=00")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 400
    assert resp.getheader("x-amzn-ErrorType", "").startswith("ValidationException")
    assert "Content-Length" in json.loads(body)["message"]
