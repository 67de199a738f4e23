"""helpers.iam: the role's coverage from the emulator's decisions and the role's policies; local-only, and says so."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import config, iam
from helpers.errors import EmulatorError


def test_on_aws_the_coverage_report_says_it_is_local_only(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    settings = config.load(target="aws")
    report = iam.coverage(settings, role_arn="arn:aws:iam::123456789012:role/any")
    assert report.note == iam.LOCAL_ONLY and "local-only" in repr(report)
    assert report.calls_df().empty and report.denied_df().empty and report.unused_df().empty
    with pytest.raises(EmulatorError, match="local-only"):
        iam.decisions(settings)


def test_coverage_lists_calls_with_their_statement_denials_and_unused_grants(local_env):
    settings = config.load()
    admin = local_env.client("iam")
    name = f"cov-{uuid.uuid4().hex[:8]}"
    arn = admin.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    admin.put_role_policy(RoleName=name, PolicyName="agent", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "ReadId", "Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"],
             "Resource": f"arn:aws:ssm:us-east-1:123456789012:parameter/{name}"}]}))
    local_env.client("ssm").put_parameter(Name=f"/{name}", Value="v", Type="String")
    creds = local_env.client("sts").assume_role(RoleArn=arn, RoleSessionName="coverage")["Credentials"]
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=local_env.endpoint,
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    ssm.get_parameter(Name=f"/{name}")
    with pytest.raises(ClientError):
        ssm.get_parameter(Name="/somebody/else")

    report = iam.coverage(settings, role_arn=arn)
    assert [(r["action"], r["sid"]) for r in report.calls] == [("ssm:GetParameter", "ReadId")]
    assert [(r["action"], r["resource"]) for r in report.denied] == [
        ("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/somebody/else")]
    assert [(g["sid"], g["action"]) for g in report.unused] == [("ReadId", "ssm:GetParameters")]
    assert "1 allowed call(s), 1 denied, 1 granted action(s) no call used" in report.summary()
    html = report._repr_html_()
    assert "Denied calls" in html and "ssm:GetParameters" in html
