"""Resource types moto's CloudFormation skips or only half-creates, written as moto writes its own.

Each class is a `CloudFormationModel`: moto's parsing resolves Ref, Fn::GetAtt, Fn::Sub and the other
intrinsic functions before a class sees its properties, and calls it to create, update and delete.
`hooks.install` puts them in moto's table of resource types.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.codebuild.models import codebuild_backends
from moto.core.common_models import CloudFormationModel
from moto.iam.models import Role as MotoRole
from moto.iam.models import iam_backends
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition

from .properties import input_shape, to_api

log = logging.getLogger("emulator.cloudformation")


def _s3(account_id: str, region_name: str):
    return s3_backends[account_id][get_partition(region_name)]


# -- AWS::S3::Bucket: the properties moto's FakeBucket ignores ------------------------------------
def _versioning(backend, bucket: str, value: Any) -> None:
    config = to_api(value, input_shape("s3", "PutBucketVersioning").members["VersioningConfiguration"],
                    "VersioningConfiguration")
    if config.get("Status"):
        backend.put_bucket_versioning(bucket, config["Status"])


def _public_access_block(backend, bucket: str, value: Any) -> None:
    if value is None:
        backend.delete_public_access_block(bucket)
        return
    config = to_api(value, input_shape("s3", "PutPublicAccessBlock").members["PublicAccessBlockConfiguration"],
                    "PublicAccessBlockConfiguration")
    backend.put_public_access_block(bucket, config)


def _ownership_controls(backend, bucket: str, value: Any) -> None:
    if value is None:
        backend.delete_bucket_ownership_controls(bucket)
        return
    config = to_api(value, input_shape("s3", "PutBucketOwnershipControls").members["OwnershipControls"],
                    "OwnershipControls")
    rules = config.get("Rules") or []
    if len(rules) != 1:
        raise ValidationError(message="Property OwnershipControls.Rules must hold exactly one rule.")
    # moto keeps the one rule's ObjectOwnership, as its PutBucketOwnershipControls does.
    backend.put_bucket_ownership_controls(bucket, rules[0]["ObjectOwnership"])


# Property -> how to apply it (None: absent from the template). moto itself applies the rest it knows.
_BUCKET_EXTRAS = {
    "VersioningConfiguration": _versioning,
    "PublicAccessBlockConfiguration": _public_access_block,
    "OwnershipControls": _ownership_controls,
}
_BUCKET_BY_MOTO = {"BucketName", "BucketEncryption", "Tags"}


class Bucket(FakeBucket):
    """AWS::S3::Bucket as moto creates it, plus versioning, the public access block and ownership.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-s3-bucket.html
    A property neither moto nor this class applies is refused by name, so a template never seems to
    deploy something the emulator silently left out.
    """

    @staticmethod
    def _check(properties: dict) -> None:
        unknown = sorted(set(properties) - _BUCKET_BY_MOTO - set(_BUCKET_EXTRAS))
        if unknown:
            raise ValidationError(message=f"The emulator's CloudFormation does not apply AWS::S3::Bucket "
                                          f"properties {', '.join(unknown)}.")

    @classmethod
    def _apply(cls, bucket: str, properties: dict, account_id: str, region_name: str, *, update: bool) -> None:
        backend = _s3(account_id, region_name)
        for name, apply in _BUCKET_EXTRAS.items():
            if name in properties:
                apply(backend, bucket, properties[name])
            elif update and name != "VersioningConfiguration":
                # Removed from the template: CloudFormation removes the setting. Versioning, once on,
                # can only be suspended, and CloudFormation leaves it as it is.
                apply(backend, bucket, None)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        cls._check(properties)
        bucket = FakeBucket.create_from_cloudformation_json(resource_name, cloudformation_json, account_id,
                                                            region_name, **kwargs)
        try:
            cls._apply(bucket.name, properties, account_id, region_name, update=False)
        except Exception:
            # The stack never learns of a resource whose creation failed: remove it here, or it outlives the rollback.
            _s3(account_id, region_name).delete_bucket(bucket.name)
            raise
        return bucket

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        cls._check(properties)
        # moto's update reads Properties["BucketName"] for tags; a generated name is not in the template.
        properties.setdefault("BucketName", original_resource.name)
        bucket = FakeBucket.update_from_cloudformation_json(original_resource, new_resource_name,
                                                            cloudformation_json, account_id, region_name)
        cls._apply(bucket.name, properties, account_id, region_name, update=bucket is original_resource)
        return bucket

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):  # type: ignore[override]
        # moto leaves a non-empty bucket in place and reports success; S3 refuses, and so the stack's
        # deletion fails naming the bucket, as on AWS.
        from moto.s3.exceptions import BucketNotEmpty

        backend = _s3(account_id, region_name)
        bucket = backend.buckets.get(resource_name)
        if bucket is None:
            return
        if bucket.keys:
            raise BucketNotEmpty(resource_name)
        backend.delete_bucket(resource_name)


# -- AWS::S3::BucketPolicy ------------------------------------------------------------------------
class BucketPolicy(CloudFormationModel):
    """AWS::S3::BucketPolicy: Ref returns the bucket's name.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-s3-bucketpolicy.html
    Deny statements with a Condition are left out. moto evaluates a bucket policy's conditions as
    unmet and denies on them, and the endpoint is plain HTTP: the usual TLS-only statement (Deny
    unless aws:SecureTransport) would refuse every request. The README's table of differences says so.
    """

    def __init__(self, bucket: str, document: dict, account_id: str, region_name: str):
        self.bucket = bucket
        self.document = document
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def is_created(self) -> bool:
        return True

    @staticmethod
    def _applied(document: dict) -> dict:
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if not (s.get("Effect") == "Deny" and s.get("Condition"))]
        return {**document, "Statement": kept}

    @classmethod
    def _put(cls, properties: dict, account_id: str, region_name: str) -> "BucketPolicy":
        for required in ("Bucket", "PolicyDocument"):
            if not properties.get(required):
                raise ValidationError(message=f"Property {required} of AWS::S3::BucketPolicy is required.")
        bucket, document = properties["Bucket"], properties["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        applied = cls._applied(document)
        backend = _s3(account_id, region_name)
        backend.get_bucket(bucket)  # NoSuchBucket, named, when the bucket is not there
        if applied["Statement"]:
            backend.put_bucket_policy(bucket, json.dumps(applied).encode())
        else:
            backend.delete_bucket_policy(bucket)
        return cls(bucket, document, account_id, region_name)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs):  # type: ignore[override]
        return cls._put(cloudformation_json.get("Properties", {}), account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        if properties.get("Bucket") != original_resource.bucket:
            original_resource.delete(account_id, region_name)
        return cls._put(properties, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):  # type: ignore[override]
        backend = _s3(account_id, region_name)
        if resource_name in backend.buckets:
            backend.delete_bucket_policy(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_from_cloudformation_json(self.bucket, {}, account_id, region_name)


# -- AWS::CodeBuild::Project ----------------------------------------------------------------------
# CreateProject's members that moto's CodeBuild stores, and the names its backend takes them by.
_CODEBUILD_ARGS = {
    "name": "project_name", "description": "description", "source": "project_source",
    "artifacts": "artifacts", "environment": "environment", "serviceRole": "service_role",
    "tags": "tags", "cache": "cache", "timeoutInMinutes": "timeout",
    "queuedTimeoutInMinutes": "queued_timeout", "sourceVersion": "source_version",
    "logsConfig": "logs_config", "vpcConfig": "vpc_config",
}


class CodeBuildProject(CloudFormationModel):
    """AWS::CodeBuild::Project: Ref returns the name, Fn::GetAtt Arn the ARN.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-codebuild-project.html
    The properties become a CreateProject request by botocore's model, checked as moto's CreateProject
    checks it; moto has no UpdateProject, so an update replaces the project under the same name.
    """

    def __init__(self, name: str, arn: str):
        self.name = name
        self.arn = arn

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeBuild::Project"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name == "Arn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    def is_created(self) -> bool:
        return True

    @staticmethod
    def _request(resource_name: str, properties: dict) -> dict:
        request = to_api({"Name": resource_name, **properties}, input_shape("codebuild", "CreateProject"),
                         "AWS::CodeBuild::Project")
        unsupported = sorted(set(request) - set(_CODEBUILD_ARGS))
        if unsupported:
            raise ValidationError(message=f"The emulator's CloudFormation does not apply AWS::CodeBuild::Project "
                                          f"properties {', '.join(unsupported)} (moto's CodeBuild keeps none of them).")
        for required in ("source", "artifacts", "environment", "serviceRole"):
            if required not in request:
                raise ValidationError(message=f"Property {required[0].upper() + required[1:]} of "
                                              f"AWS::CodeBuild::Project is required.")
        return request

    @classmethod
    def _create(cls, request: dict, account_id: str, region_name: str,
                replacing: "CodeBuildProject | None" = None) -> "CodeBuildProject":
        from moto.codebuild import responses as checks

        # Checked before anything is replaced, so a bad update leaves the old project in place.
        checks._validate_required_params_source(request["source"])
        checks._validate_required_params_service_role(account_id, region_name, request["serviceRole"])
        checks._validate_required_params_artifacts(request["artifacts"])
        checks._validate_required_params_environment(request["environment"])
        checks._validate_required_params_project_name(request["name"])
        if replacing is not None:
            replacing.delete(account_id, region_name)
        backend = codebuild_backends[account_id][region_name]
        if request["name"] in backend.codebuild_projects:
            raise ValidationError(message=f"Project already exists: {request['name']}.")
        kwargs = {arg: request.get(member) for member, arg in _CODEBUILD_ARGS.items()}
        metadata = backend.create_project(**kwargs)
        return cls(request["name"], metadata["arn"])

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs):  # type: ignore[override]
        request = cls._request(resource_name, cloudformation_json.get("Properties", {}))
        return cls._create(request, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        # Without a Name the project keeps the one generated at creation (moto would draw a new one).
        request = cls._request(properties.get("Name") or original_resource.name, properties)
        return cls._create(request, account_id, region_name, replacing=original_resource)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name):  # type: ignore[override]
        codebuild_backends[account_id][region_name].delete_project(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_from_cloudformation_json(self.name, {}, account_id, region_name)


# -- AWS::IAM::Role: inline policies as AWS keeps them, and kept up to date ------------------------
class Role(MotoRole):
    """AWS::IAM::Role as moto creates it, with its inline policies stored as JSON text (moto keeps
    the template's dict, which GetRolePolicy then answers as a Python literal) and, on update, its
    trust policy and inline policies replaced by the template's (moto's update changes neither).

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-iam-role.html
    """

    @staticmethod
    def _policies(role, properties: dict) -> None:
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies", []) or []}
        for name in list(role.policies):
            if name not in wanted:
                role.delete_policy(name)
        for name, document in wanted.items():
            role.put_policy(name, document if isinstance(document, str) else json.dumps(document))

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs):  # type: ignore[override]
        role = MotoRole.create_from_cloudformation_json(resource_name, cloudformation_json, account_id,
                                                        region_name, **kwargs)
        cls._policies(role, cloudformation_json.get("Properties", {}))
        return role

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):  # type: ignore[override]
        role = MotoRole.update_from_cloudformation_json(original_resource, new_resource_name,
                                                        cloudformation_json, account_id, region_name)
        properties = cloudformation_json.get("Properties", {})
        trust = properties.get("AssumeRolePolicyDocument")
        if trust is not None:
            iam_backends[account_id][get_partition(region_name)].update_assume_role_policy(
                role.name, trust if isinstance(trust, str) else json.dumps(trust))
        cls._policies(role, properties)
        return role


# The types hooks.install registers, by CloudFormation type.
RESOURCE_TYPES: tuple[type[CloudFormationModel], ...] = (Bucket, BucketPolicy, CodeBuildProject, Role)
