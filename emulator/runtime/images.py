"""Container images for local runtimes: find the image in ECR, fetch its recorded build context, unpack it.

A local build (helpers.image, method "local") pushes an OCI manifest whose single layer is the
packed `container/` directory: the layer's digest is the context's sha256 and its `urls` say where
the tarball lives (S3). Pulling an image here means downloading that tarball once per digest,
checking the digest, and unpacking it under the state dir; the agent then runs from there.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..core.settings import Settings
from .exceptions import ValidationException

# The annotation a local build puts on its manifest, and the one naming the ASGI app to serve.
BUILD_ANNOTATION = "org.agentcore-workshop.build"
APP_ANNOTATION = "org.agentcore-workshop.app"
LOCAL_BUILD = "local-context"
DEFAULT_APP = "agent.app:app"
MEDIA_TYPES = ["application/vnd.oci.image.manifest.v1+json",
               "application/vnd.docker.distribution.manifest.v2+json"]

# A layer digest is used as a directory name: only the exact sha256 form may get that far.
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_URI = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                  r"(?P<repo>[^:@]+)(?::(?P<tag>[^:@]+))?(?:@(?P<digest>.+))?$")


def parse_image_uri(uri: str) -> dict:
    m = _URI.match(uri)
    if not m:
        raise ValidationException(f"containerUri {uri!r} is not an ECR image URI "
                                  "(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>).")
    return m.groupdict()


class ImageStore:
    """Resolves image URIs through the emulator's own ECR and S3, and caches unpacked contexts."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.state_dir / "runtime" / "contexts"
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _client(self, service: str, region: str):
        # The emulator talks to its own endpoint, exactly as any other client does.
        return boto3.client(service, region_name=region, endpoint_url=self.settings.endpoint,
                            aws_access_key_id="emulator", aws_secret_access_key="emulator",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60))

    def resolve(self, uri: str, account: str, region: str) -> dict:
        """What a runtime needs to run `uri`: its digest and, for local builds, the unpacked context."""
        parts = parse_image_uri(uri)
        image_id = {"imageDigest": parts["digest"]} if parts["digest"] else {"imageTag": parts["tag"] or "latest"}
        try:
            answer = self._client("ecr", parts["region"]).batch_get_image(
                registryId=parts["account"], repositoryName=parts["repo"], imageIds=[image_id],
                acceptedMediaTypes=MEDIA_TYPES)
        except ClientError as exc:
            raise ValidationException(f"The container image {uri} could not be read from ECR: "
                                      f"{exc.response['Error'].get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise ValidationException(f"The container image {uri} could not be read from ECR: {exc}") from exc
        if not answer.get("images"):
            reason = (answer.get("failures") or [{}])[0].get("failureReason", "not found")
            raise ValidationException(f"The container image {uri} was not found in ECR ({reason}). "
                                      "Build and push it first (helpers.image.build_and_push).")
        image = answer["images"][0]
        manifest = json.loads(image["imageManifest"])
        context = local_context(manifest)
        resolved = {"containerUri": uri, "imageDigest": image["imageId"].get("imageDigest"), "context": context}
        if context:
            self.unpack(context, parts["region"])
        return resolved

    def unpack(self, context: dict, region: str) -> Path:
        """The directory holding the context with this digest, fetched and unpacked on first use."""
        digest = context.get("digest")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ValidationException(f"The image's layer digest {digest!r} is not of the form sha256:<64 hex "
                                      "digits>. Rebuild and push the image with helpers.image.build_and_push.")
        hex_digest = digest.split(":", 1)[1]
        target = self.root / hex_digest
        if target.resolve().parent != self.root.resolve():
            raise ValidationException(f"The image's layer digest {digest!r} does not name a directory inside "
                                      "the emulator's image cache.")
        with self._lock_for(hex_digest):
            if target.is_dir():
                # Only a context whose digest was checked is ever renamed to this name (below).
                return target
            data = self._fetch(context["uri"], region)
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != context["digest"]:
                raise ValidationException(f"The build context at {context['uri']} has digest {actual}, but the "
                                          f"image records {context['digest']}. Rebuild and push the image.")
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{hex_digest[:12]}-", dir=self.root))
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    tar.extractall(staging, filter="data")
                staging.rename(target)  # atomic: a half-unpacked context is never seen
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target

    def _fetch(self, uri: str, region: str) -> bytes:
        m = re.match(r"^s3://([^/]+)/(.+)$", uri)
        if not m:
            raise ValidationException(f"The image's build context location {uri!r} is not an s3:// URI.")
        try:
            return self._client("s3", region).get_object(Bucket=m.group(1), Key=m.group(2))["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ValidationException(f"The image's build context {uri} could not be fetched: {exc}") from exc

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def local_context(manifest: dict) -> dict | None:
    """The build context a local build recorded in this manifest, or None for an ordinary image."""
    annotations = manifest.get("annotations") or {}
    if annotations.get(BUILD_ANNOTATION) != LOCAL_BUILD:
        return None
    layers = manifest.get("layers") or []
    if len(layers) != 1 or not layers[0].get("urls"):
        raise ValidationException("The image says it is a local build but has no single layer with a location.")
    layer = layers[0]
    if not isinstance(layer.get("digest"), str) or not _DIGEST.match(layer["digest"]):
        raise ValidationException(f"The image's layer digest {layer.get('digest')!r} is not of the form "
                                  "sha256:<64 hex digits>. Rebuild and push the image.")
    return {"uri": layer["urls"][0], "digest": layer["digest"], "app": annotations.get(APP_ANNOTATION, DEFAULT_APP)}
