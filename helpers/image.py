"""Build the agent image and push it to the stack's ECR repository: locally, with CodeBuild, or with Docker.

Every method tags the image with the digest of the packed `container/` directory (`src-<12 hex>`),
so one image URI always means one version of the agent's code, and an unchanged context is not
pushed again. `latest` follows the newest build; `latest_image_uri` reads it back from ECR.

- local (TARGET=local): no container engine. The context is packed deterministically (sorted
  tar, fixed times and owners, gzip without a timestamp), stored in the stack's bucket under
  `image-contexts/`, and an OCI manifest whose one layer points there is pushed to the emulator's
  ECR. The emulator's runtime runs the agent from that context.
- codebuild: the context goes to the bucket as the CodeBuild project's source zip; the project
  (ARM64) builds and pushes; its log is shown as it runs.
- docker: ECR login, then `docker buildx build --platform linux/arm64 --push`.
"""
from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from botocore.exceptions import ClientError

from . import aws, waiters
from .config import PROJECT_ROOT, Settings
from .errors import ConfigError, ImageBuildError, aws_error_code

CONTAINER_DIR = PROJECT_ROOT / "container"
METHODS = ("auto", "local", "codebuild", "docker")
PLATFORM = "linux/arm64"
CONTEXT_PREFIX = "image-contexts/"
DEFAULT_APP = "agent.app:app"
# Read by the emulator's runtime (emulator/runtime/images.py): keep the two in step.
BUILD_ANNOTATION = "org.agentcore-workshop.build"
APP_ANNOTATION = "org.agentcore-workshop.app"
LOCAL_BUILD = "local-context"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# 1980-01-01: the earliest time a zip can hold, used for every entry of both archive kinds.
FIXED_MTIME = 315532800
# How often a running CodeBuild build is looked at (its log is shown each time).
CODEBUILD_POLL_SECONDS = 5.0
# Never part of a build context, whatever .dockerignore says.
ALWAYS_IGNORED = ("__pycache__", "*.pyc", ".git", ".venv", ".pytest_cache", ".ipynb_checkpoints", ".DS_Store",
                  "node_modules")


@dataclass(frozen=True)
class PackedContext:
    """A build context packed byte-for-byte reproducibly: same files, same digest."""

    data: bytes
    digest: str  # "sha256:<hex>" of `data`
    files: list[str]
    kind: str  # "tar.gz" or "zip"

    @property
    def tag(self) -> str:
        return "src-" + self.digest.split(":", 1)[1][:12]


@dataclass
class ImageBuild:
    """What a build produced; shows itself as a short summary in a notebook."""

    image_uri: str
    image_digest: str | None
    method: str
    reason: str
    context_digest: str
    pushed: bool
    seconds: float
    files: int = 0
    details: dict = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        state = "pushed" if self.pushed else "already in ECR (unchanged context, nothing pushed)"
        return (f"**Image** `{self.image_uri}`  \n"
                f"method **{self.method}**: {self.reason}  \n"
                f"{state}; image digest `{self.image_digest}`; context `{self.context_digest[:19]}...` "
                f"({self.files} files); {self.seconds:.1f}s")


class BuildMethod(NamedTuple):
    """The build method chosen for a target, and why; unpacks as `(method, why)`."""

    method: str
    why: str

    def __repr__(self) -> str:
        return f"{self.method}: {self.why}"

    __str__ = __repr__

    def _repr_markdown_(self) -> str:
        return f"method **{self.method}**: {self.why}"


# -- packing -----------------------------------------------------------------------------------
def _ignore_patterns(context_dir: Path) -> list[str]:
    patterns = list(ALWAYS_IGNORED)
    dockerignore = context_dir / ".dockerignore"
    if dockerignore.exists():
        for line in dockerignore.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("!"):
                patterns.append(line.rstrip("/"))
    return patterns


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        if fnmatch.fnmatch(rel, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def context_files(context_dir: Path) -> list[str]:
    """The files of a build context, as sorted POSIX paths relative to it (symlinks are not followed)."""
    context_dir = Path(context_dir)
    if not context_dir.is_dir():
        raise ImageBuildError(f"The build context {context_dir} is not a directory.",
                              hint="Pass context_dir= pointing at the agent's container/ directory.")
    patterns = _ignore_patterns(context_dir)
    found = []
    for root, dirs, names in os.walk(context_dir):
        rel_root = Path(root).relative_to(context_dir).as_posix()
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not _ignored(rel_root + d, patterns))
        for name in names:
            rel = rel_root + name
            if not _ignored(rel, patterns) and (Path(root) / name).is_file():
                found.append(rel)
    return sorted(found)


def context_df(context_dir: Path = CONTAINER_DIR):
    """The files that go into the image (what .dockerignore and caches leave out is not listed)."""
    import pandas as pd

    files = context_files(Path(context_dir))
    rows = [(rel, (Path(context_dir) / rel).stat().st_size) for rel in files]
    return pd.DataFrame(rows, columns=["file", "bytes"])


def _mode(path: Path) -> int:
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


def pack_context(context_dir: Path = CONTAINER_DIR, kind: str = "tar.gz") -> PackedContext:
    """Pack `context_dir` reproducibly: sorted entries, fixed times, owner 0, no gzip timestamp."""
    context_dir = Path(context_dir)
    files = context_files(context_dir)
    buf = io.BytesIO()
    if kind == "tar.gz":
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for rel in files:
                    path = context_dir / rel
                    info = tarfile.TarInfo(rel)
                    info.size = path.stat().st_size
                    info.mtime = FIXED_MTIME
                    info.mode = _mode(path)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
    elif kind == "zip":
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                path = context_dir / rel
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o100000 | _mode(path)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    else:
        raise ConfigError(f"kind={kind!r} is not an archive kind; use 'tar.gz' or 'zip'.")
    data = buf.getvalue()
    return PackedContext(data, "sha256:" + hashlib.sha256(data).hexdigest(), files, kind)


def local_manifest(context: PackedContext, location: str, app: str = DEFAULT_APP) -> bytes:
    """The OCI manifest of a local build: one layer, the context, with where it is stored."""
    config = json.dumps({"architecture": "arm64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [context.digest]}},
                        sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": context.digest,
                    "size": len(context.data), "urls": [location]}],
        "annotations": {BUILD_ANNOTATION: LOCAL_BUILD, APP_ANNOTATION: app},
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


# -- choosing a method -------------------------------------------------------------------------
def docker_available(run: Callable = subprocess.run) -> tuple[bool, str]:
    """Whether a Docker engine with buildx answers here, and why not when it does not."""
    if shutil.which("docker") is None:
        return False, "no docker command on PATH"
    for cmd, what in ((["docker", "info", "--format", "{{.ServerVersion}}"], "no Docker engine answers"),
                      (["docker", "buildx", "version"], "docker buildx is not installed")):
        try:
            proc = run(cmd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{what} ({exc})"
        if proc.returncode != 0:
            return False, what
    return True, "a Docker engine with buildx answers"


def choose_method(settings: Settings, method: str = "auto",
                  docker_check: Callable[[], tuple[bool, str]] = docker_available) -> BuildMethod:
    """The method for this target and why; an explicit method is checked against the target."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not a build method.", hint=f"Use one of {', '.join(METHODS)}.")
    if settings.is_local:
        if method in ("auto", "local"):
            return BuildMethod("local", "TARGET=local: the context is packed and recorded in the emulator's ECR; "
                             "the emulator runs it without a container engine")
        raise ConfigError(f"method={method!r} cannot build for TARGET=local: the emulator's ECR is not a "
                          "registry Docker or CodeBuild can push to.", hint="Use method='local' (or 'auto').")
    if method == "local":
        raise ConfigError("method='local' only works with TARGET=local: AWS runs real container images.",
                          hint="Use 'codebuild', 'docker' or 'auto'.")
    if method != "auto":
        return BuildMethod(method, "asked for explicitly")
    ok, why = docker_check()
    if ok:
        return BuildMethod("docker", f"{why}: build for {PLATFORM} with buildx and push")
    return BuildMethod("codebuild", f"{why} (as in SageMaker Studio): the stack's CodeBuild project builds on ARM64")


# -- the one entry point -----------------------------------------------------------------------
def build_and_push(settings: Settings, method: str = "auto", *, context_dir: Path = CONTAINER_DIR,
                   repository_uri: str | None = None, bucket: str | None = None,
                   project_name: str | None = None, source_key: str | None = None, app: str = DEFAULT_APP,
                   timeout: float = 1800.0, progress: bool = True) -> ImageBuild:
    """Build the agent image from `context_dir` and push it; stack outputs fill what is not given."""
    chosen, reason = choose_method(settings, method)
    needs = {"repository_uri": repository_uri, "bucket": bucket}
    if chosen == "codebuild":
        needs.update(project_name=project_name, source_key=source_key)
    if any(v is None for v in needs.values()):
        outputs = _stack_outputs(settings)
        keys = {"repository_uri": "RepositoryUri", "bucket": "BucketName", "project_name": "CodeBuildProjectName",
                "source_key": "CodeBuildSourceKey"}
        for name, value in needs.items():
            if value is None:
                needs[name] = outputs.get(keys[name])
                if needs[name] is None:
                    raise ImageBuildError(f"Stack {settings.stack_name} has no output {keys[name]}.",
                                          hint="Deploy the current stack (notebook 01), or pass "
                                               f"{name}= explicitly.")
    started = time.monotonic()
    if chosen == "local":
        build = _build_local(settings, Path(context_dir), needs["repository_uri"], needs["bucket"], app)
    elif chosen == "codebuild":
        build = _build_codebuild(settings, Path(context_dir), needs["repository_uri"], needs["bucket"],
                                 needs["project_name"], needs["source_key"], timeout, progress)
    else:
        build = _build_docker(settings, Path(context_dir), needs["repository_uri"], progress)
    build.method, build.reason = chosen, reason
    build.seconds = time.monotonic() - started
    return build


def _stack_outputs(settings: Settings) -> dict[str, str]:
    from . import stack

    return stack.stack_outputs(settings)


def repository_name(repository_uri: str) -> str:
    """`acct.dkr.ecr.region.amazonaws.com/name` -> `name`."""
    if "/" not in repository_uri:
        raise ConfigError(f"repository_uri {repository_uri!r} is not an ECR repository URI "
                          "(<account>.dkr.ecr.<region>.amazonaws.com/<name>).")
    return repository_uri.split("/", 1)[1]


def _image_digest(ecr, repo: str, tag: str) -> str | None:
    try:
        images = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"]
    except ClientError as exc:
        if aws_error_code(exc) == "ImageNotFoundException":
            return None
        raise ImageBuildError(f"Could not read image {repo}:{tag} from ECR: {exc}") from exc
    return images[0]["imageDigest"] if images else None


def _manifest(ecr, repo: str, tag: str) -> str | None:
    """The manifest `tag` names, as stored (compared as text: registries differ in how they digest)."""
    try:
        images = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}],
                                     acceptedMediaTypes=[OCI_MANIFEST])["images"]
    except ClientError as exc:
        raise ImageBuildError(f"Could not read image {repo}:{tag} from ECR: {exc}",
                              hint="Is the stack deployed (notebook 01)?") from exc
    return images[0]["imageManifest"] if images else None


def _tag_latest(ecr, repo: str, tag: str) -> None:
    """Point `latest` at the image `tag` names (ECR retags by putting the same manifest under a new tag)."""
    images = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}],
                                 acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json",
                                                     OCI_MANIFEST,
                                                     "application/vnd.oci.image.index.v1+json",
                                                     "application/vnd.docker.distribution.manifest.list.v2+json"])
    if not images.get("images"):
        raise ImageBuildError(f"Image {repo}:{tag} is not in ECR after its build.",
                              hint="Read the build's log above; the push may have failed.")
    found = images["images"][0]
    kwargs = {"repositoryName": repo, "imageManifest": found["imageManifest"], "imageTag": "latest"}
    if found.get("imageManifestMediaType"):
        kwargs["imageManifestMediaType"] = found["imageManifestMediaType"]
    try:
        ecr.put_image(**kwargs)
    except ClientError as exc:
        if aws_error_code(exc) != "ImageAlreadyExistsException":  # latest already names it
            raise ImageBuildError(f"Could not tag {repo}:{tag} as latest: {exc}") from exc


# -- local -------------------------------------------------------------------------------------
def _build_local(settings: Settings, context_dir: Path, repository_uri: str, bucket: str, app: str) -> ImageBuild:
    context = pack_context(context_dir, "tar.gz")
    s3 = aws.client("s3", settings)
    ecr = aws.client("ecr", settings)
    key = f"{CONTEXT_PREFIX}sha256-{context.digest.split(':', 1)[1]}.tar.gz"
    location = f"s3://{bucket}/{key}"
    uploaded = False
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws_error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise ImageBuildError(f"Could not check s3://{bucket}/{key}: {exc}",
                                  hint="Is the stack deployed (notebook 01)?") from exc
        s3.put_object(Bucket=bucket, Key=key, Body=context.data, ContentType="application/gzip")
        uploaded = True
    manifest = local_manifest(context, location, app)
    repo = repository_name(repository_uri)
    pushed = False
    for tag in (context.tag, "latest"):
        if _manifest(ecr, repo, tag) == manifest.decode():
            continue  # this tag already names exactly this manifest: nothing to push
        try:
            ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageManifestMediaType=OCI_MANIFEST,
                          imageTag=tag)
        except ClientError as exc:
            if aws_error_code(exc) != "ImageAlreadyExistsException":
                raise ImageBuildError(f"Could not push the manifest to {repository_uri}:{tag}: {exc}",
                                      hint="Is the stack deployed (notebook 01)?") from exc
        pushed = True
    return ImageBuild(image_uri=f"{repository_uri}:{context.tag}", image_digest=_image_digest(ecr, repo, context.tag),
                      method="local", reason="", context_digest=context.digest, pushed=pushed, seconds=0.0,
                      files=len(context.files), details={"context_location": location, "context_uploaded": uploaded,
                                                        "app": app})


# -- CodeBuild ---------------------------------------------------------------------------------
def codebuild_request(project_name: str, bucket: str, source_key: str, tag: str) -> dict:
    """The StartBuild request: this source zip, this tag (the project's buildspec reads IMAGE_TAG)."""
    return {"projectName": project_name, "sourceTypeOverride": "S3",
            "sourceLocationOverride": f"{bucket}/{source_key}",
            "environmentVariablesOverride": [{"name": "IMAGE_TAG", "value": tag, "type": "PLAINTEXT"}]}


def _build_codebuild(settings: Settings, context_dir: Path, repository_uri: str, bucket: str, project_name: str,
                     source_key: str, timeout: float, progress: bool) -> ImageBuild:
    context = pack_context(context_dir, "zip")
    ecr = aws.client("ecr", settings)
    repo = repository_name(repository_uri)
    existing = _image_digest(ecr, repo, context.tag)
    if existing:
        _tag_latest(ecr, repo, context.tag)
        return ImageBuild(f"{repository_uri}:{context.tag}", existing, "codebuild", "", context.digest, False, 0.0,
                          len(context.files))
    s3 = aws.client("s3", settings)
    codebuild = aws.client("codebuild", settings)
    logs = aws.client("logs", settings)
    s3.put_object(Bucket=bucket, Key=source_key, Body=context.data, ContentType="application/zip")
    try:
        build = codebuild.start_build(**codebuild_request(project_name, bucket, source_key, context.tag))["build"]
    except ClientError as exc:
        raise ImageBuildError(f"CodeBuild project {project_name} would not start: {exc}",
                              hint="Is the stack deployed (notebook 01)?") from exc
    build_id = build["id"]
    tail = _LogTail(logs, progress)

    def probe() -> dict:
        current = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
        tail.show(current.get("logs") or {})
        return current

    final = waiters.wait_for(
        f"CodeBuild {build_id}", probe,
        done=lambda b: b["buildStatus"] == "SUCCEEDED",
        failed=lambda b: (None if b["buildStatus"] in ("IN_PROGRESS", "SUCCEEDED") else
                          ImageBuildError(f"CodeBuild {build_id} ended {b['buildStatus']} in phase "
                                          f"{b.get('currentPhase')}.",
                                          hint="Read its log above (or in CloudWatch Logs), fix, and build again.")),
        describe=lambda b: f"{b['buildStatus']} ({b.get('currentPhase', '?')})",
        timeout=timeout, interval=CODEBUILD_POLL_SECONDS, max_interval=10.0, progress=progress)
    tail.show(final.get("logs") or {})
    # The project's buildspec pushes IMAGE_TAG only; `latest` is moved here, so it names the newest build.
    _tag_latest(ecr, repo, context.tag)
    digest = _image_digest(ecr, repo, context.tag)
    return ImageBuild(f"{repository_uri}:{context.tag}", digest, "codebuild", "", context.digest, True, 0.0,
                      len(context.files), details={"build_id": build_id})


class _LogTail:
    """Prints the lines of a CodeBuild log that have not been printed yet."""

    def __init__(self, logs, enabled: bool):
        self.logs, self.enabled, self.token = logs, enabled, None

    def show(self, where: dict) -> None:
        group, stream = where.get("groupName"), where.get("streamName")
        if not (self.enabled and group and stream):
            return
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if self.token:
            kwargs["nextToken"] = self.token
        try:
            page = self.logs.get_log_events(**kwargs)
        except ClientError as exc:
            if aws_error_code(exc) == "ResourceNotFoundException":
                return  # the build has not written its first line yet
            raise
        for event in page.get("events", []):
            print(event["message"].rstrip("\n"), flush=True)
        self.token = page.get("nextForwardToken") or self.token


# -- Docker ------------------------------------------------------------------------------------
def docker_commands(registry: str, image_uri: str, context_dir: Path, platform: str = PLATFORM) -> list[list[str]]:
    """The two commands of a Docker build: log in to ECR (password on stdin), build for ARM64 and push."""
    return [["docker", "login", "--username", "AWS", "--password-stdin", registry],
            # No provenance or SBOM attestations: with them buildx pushes an image index, not the
            # single-platform image manifest that AgentCore Runtime (like Lambda) expects.
            ["docker", "buildx", "build", "--platform", platform, "--provenance=false", "--sbom=false",
             "--tag", image_uri, "--tag", image_uri.rsplit(":", 1)[0] + ":latest", "--push", str(context_dir)]]


def ecr_password(ecr) -> str:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return password


def _build_docker(settings: Settings, context_dir: Path, repository_uri: str, progress: bool,
                  run: Callable = subprocess.run, popen: Callable = subprocess.Popen) -> ImageBuild:
    context = pack_context(context_dir, "tar.gz")
    ecr = aws.client("ecr", settings)
    repo = repository_name(repository_uri)
    image_uri = f"{repository_uri}:{context.tag}"
    existing = _image_digest(ecr, repo, context.tag)
    if existing:
        _tag_latest(ecr, repo, context.tag)
        return ImageBuild(image_uri, existing, "docker", "", context.digest, False, 0.0, len(context.files))
    login, build = docker_commands(repository_uri.split("/", 1)[0], image_uri, context_dir)
    proc = run(login, input=ecr_password(ecr), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ImageBuildError(f"docker login to {login[-1]} failed: {proc.stderr.strip()}",
                              hint="Check the Docker engine and your AWS credentials.")
    lines = []
    with popen(build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        for line in child.stdout:
            lines.append(line.rstrip())
            if progress:
                print(line.rstrip(), flush=True)
    if child.returncode != 0:
        raise ImageBuildError(f"docker buildx build for {PLATFORM} failed (exit {child.returncode}): "
                              f"{' | '.join(lines[-3:])}",
                              hint="Read the build output above; on x86 machines buildx needs QEMU for ARM64.")
    return ImageBuild(image_uri, _image_digest(ecr, repo, context.tag), "docker", "", context.digest, True, 0.0,
                      len(context.files))


# -- reading back ------------------------------------------------------------------------------
def latest_image_uri(settings: Settings, repository_uri: str | None = None) -> str:
    """The URI (content tag) of the image `latest` names in the stack's repository."""
    repository_uri = repository_uri or _stack_outputs(settings)["RepositoryUri"]
    repo = repository_name(repository_uri)
    ecr = aws.client("ecr", settings)
    digest = _image_digest(ecr, repo, "latest")
    if digest is None:
        raise ImageBuildError(f"Repository {repo} has no image tagged latest.",
                              hint="Build and push one first (notebook 03_build_image).")
    details = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]
    tags = sorted(t for t in details.get("imageTags", []) if t.startswith("src-"))
    return f"{repository_uri}:{tags[0] if tags else 'latest'}"


def images_df(settings: Settings, repository_uri: str | None = None):
    """The repository's images, newest first: tags, digest, pushed at, size."""
    import pandas as pd

    repository_uri = repository_uri or _stack_outputs(settings)["RepositoryUri"]
    repo = repository_name(repository_uri)
    ecr = aws.client("ecr", settings)
    rows = []
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
        for d in page["imageDetails"]:
            rows.append({"tags": ", ".join(sorted(d.get("imageTags", []))), "digest": d["imageDigest"],
                         "pushed_at": d.get("imagePushedAt"), "size_bytes": d.get("imageSizeInBytes"),
                         "media_type": d.get("imageManifestMediaType")})
    df = pd.DataFrame(rows, columns=["tags", "digest", "pushed_at", "size_bytes", "media_type"])
    if not len(df):
        return df
    # Newest first; within one second (timestamps are whole seconds) the image `latest` names leads.
    df["_latest"] = df["tags"].str.split(", ").map(lambda tags: "latest" in tags)
    df = df.sort_values(["pushed_at", "_latest"], ascending=[False, False], ignore_index=True, kind="stable")
    return df.drop(columns="_latest")
