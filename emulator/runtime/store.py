"""AgentCore Runtime's control-plane state: runtimes, their versions and endpoints, kept in SQLite.

Rules follow the service: a runtime is CREATING, then READY; an update adds a version and is
UPDATING until the DEFAULT endpoint serves it; a delete is DELETING, then gone. Transitions are
settled lazily against the clock (as moto does), so waiting code runs for real and a restarted
emulator, which reloads the database, picks up exactly where it stopped.
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import string
import threading
import time
from pathlib import Path
from typing import Callable

from .exceptions import (ConflictException, RetryableConflictException, ValidationException, endpoint_not_found,
                         runtime_not_found)

DEFAULT_ENDPOINT = "DEFAULT"
# What GetAgentRuntime reports when the caller set no lifecycle (AWS's documented defaults).
DEFAULT_LIFECYCLE = {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}
_ALNUM = string.ascii_letters + string.digits
# Input members that describe a version (everything else in a create/update request is not).
_NOT_SPEC = {"agentRuntimeId", "agentRuntimeName", "clientToken", "tags"}


def _suffix() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(10))


def _now() -> float:
    return time.time()


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


class RuntimeStore:
    """Every runtime of every account and region, one JSON document per runtime in one SQLite table."""

    def __init__(self, path: Path, resolve_image: Callable[[str, str, str], dict],
                 on_deleted: Callable[[dict], None] = lambda doc: None, transition_seconds: float = 1.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS runtimes (id TEXT PRIMARY KEY, account TEXT, region TEXT,"
                         " name TEXT, doc TEXT NOT NULL)")
        self._lock = threading.RLock()
        # resolve_image(container_uri, account, region) -> what the local runtime needs to run that image;
        # raises ValidationException when the image cannot be found.
        self._resolve_image = resolve_image
        self._on_deleted = on_deleted
        # Seconds a runtime or endpoint stays CREATING/UPDATING/DELETING (AWS: tens of seconds).
        self.transition_seconds = transition_seconds

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- persistence -------------------------------------------------------------------------
    def _load(self, runtime_id: str, account: str, region: str) -> dict:
        row = self._db.execute("SELECT doc FROM runtimes WHERE id=? AND account=? AND region=?",
                               (runtime_id, account, region)).fetchone()
        if row is None:
            raise runtime_not_found(runtime_id)
        doc = self._settle(json.loads(row[0]))
        if doc is None:
            raise runtime_not_found(runtime_id)
        return doc

    def _save(self, doc: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO runtimes (id, account, region, name, doc) VALUES (?,?,?,?,?)",
                         (doc["id"], doc["account"], doc["region"], doc["name"], json.dumps(doc)))

    def _all(self, account: str, region: str) -> list[dict]:
        rows = self._db.execute("SELECT doc FROM runtimes WHERE account=? AND region=?",
                                (account, region)).fetchall()
        docs = [self._settle(json.loads(r[0])) for r in rows]
        return sorted((d for d in docs if d is not None), key=lambda d: d["created_at"])

    def _settle(self, doc: dict) -> dict | None:
        """Apply the transitions whose time has come; None when the runtime is gone."""
        now = _now()
        changed = False
        if doc["status"] in ("CREATING", "UPDATING") and now >= doc["settle_at"]:
            doc["status"] = "READY"
            changed = True
        for name, ep in list(doc["endpoints"].items()):
            if ep["status"] in ("CREATING", "UPDATING") and now >= ep["settle_at"]:
                ep["status"] = "READY"
                ep["liveVersion"] = ep["targetVersion"]
                ep["lastUpdatedAt"] = ep["settle_at"]
                changed = True
            elif ep["status"] == "DELETING" and now >= ep["settle_at"]:
                del doc["endpoints"][name]
                changed = True
        if doc["status"] == "DELETING" and now >= doc["settle_at"]:
            self._db.execute("DELETE FROM runtimes WHERE id=?", (doc["id"],))
            self._on_deleted(doc)
            return None
        if changed:
            self._save(doc)
        return doc

    # -- runtimes ----------------------------------------------------------------------------
    def create(self, params: dict, account: str, region: str) -> dict:
        check_lifecycle(params)
        existing = self._existing(params, account, region)
        if existing is not None:
            return existing
        # Resolving the image calls the emulator's own ECR and S3 (seconds, up to a minute): never under the
        # lock, which every control-plane call and every invocation takes.
        image = self._image_for(params, account, region)
        with self._lock:
            # Checked again: another create may have finished while the image was being resolved.
            existing = self._existing(params, account, region)
            if existing is not None:
                return existing
            name = params["agentRuntimeName"]
            token = params.get("clientToken")
            runtime_id = f"{name}-{_suffix()}"
            arn = f"arn:aws:bedrock-agentcore:{region}:{account}:runtime/{runtime_id}"
            now = _now()
            doc = {
                "id": runtime_id, "arn": arn, "name": name, "account": account, "region": region,
                "created_at": now, "updated_at": now, "status": "CREATING",
                "settle_at": now + self.transition_seconds, "client_token": token,
                "tags": params.get("tags") or {},
                "workload_identity_arn": (f"arn:aws:bedrock-agentcore:{region}:{account}:workload-identity-directory/"
                                          f"default/workload-identity/{runtime_id}"),
                "latest": "1",
                "versions": {"1": {"spec": _spec(params), "image": image, "created_at": now}},
                "endpoints": {},
            }
            doc["endpoints"][DEFAULT_ENDPOINT] = self._new_endpoint(doc, DEFAULT_ENDPOINT, "1", None, now)
            self._save(doc)
            return doc

    def _existing(self, params: dict, account: str, region: str) -> dict | None:
        """The runtime a retried create (same clientToken) made; ConflictException for a taken name."""
        token = params.get("clientToken")
        name = params["agentRuntimeName"]
        with self._lock:
            for doc in self._all(account, region):
                if token and doc.get("client_token") == token:
                    return doc  # a retried request: the same answer, not a second runtime
                if doc["name"] == name:
                    raise ConflictException(f"An agent runtime named {name} already exists in {region}"
                                            f" ({doc['id']}). Update it, or delete it first.")
        return None

    def get(self, runtime_id: str, account: str, region: str) -> dict:
        with self._lock:
            return self._load(runtime_id, account, region)

    def list(self, account: str, region: str) -> list[dict]:
        with self._lock:
            return self._all(account, region)

    def find_by_arn(self, arn: str, account: str, region: str) -> dict:
        runtime_id = arn.rsplit("/", 1)[-1]
        doc = self.get(runtime_id, account, region)
        if arn.startswith("arn:") and arn != doc["arn"]:
            raise runtime_not_found(arn)
        return doc

    def update(self, runtime_id: str, params: dict, account: str, region: str) -> dict:
        check_lifecycle(params)
        self._check_updatable(runtime_id, account, region)
        image = self._image_for(params, account, region)  # outside the lock, as in create()
        with self._lock:
            doc = self._check_updatable(runtime_id, account, region)
            now = _now()
            version = str(int(doc["latest"]) + 1)
            doc["versions"][version] = {"spec": _spec(params), "image": image, "created_at": now}
            doc["latest"] = version
            doc["status"] = "UPDATING"
            doc["settle_at"] = now + self.transition_seconds
            doc["updated_at"] = now
            # DEFAULT always follows the newest version, as on AWS.
            ep = doc["endpoints"][DEFAULT_ENDPOINT]
            ep.update(targetVersion=version, status="UPDATING", settle_at=now + self.transition_seconds, lastUpdatedAt=now)
            self._save(doc)
            return doc

    def _check_updatable(self, runtime_id: str, account: str, region: str) -> dict:
        with self._lock:
            doc = self._load(runtime_id, account, region)
            if doc["status"] not in ("READY", "UPDATE_FAILED"):
                raise ConflictException(f"AgentRuntime {runtime_id} is {doc['status']}; "
                                        "it can be updated once it is READY.")
            return doc

    def delete(self, runtime_id: str, account: str, region: str) -> dict:
        with self._lock:
            doc = self._load(runtime_id, account, region)
            if doc["status"] == "DELETING":
                return doc
            now = _now()
            doc["status"] = "DELETING"
            doc["settle_at"] = now + self.transition_seconds
            doc["updated_at"] = now
            self._save(doc)
            return doc

    def _image_for(self, params: dict, account: str, region: str) -> dict | None:
        artifact = params.get("agentRuntimeArtifact") or {}
        container = artifact.get("containerConfiguration")
        if not container:
            raise ValidationException("agentRuntimeArtifact.containerConfiguration.containerUri is required: "
                                      "the emulator runs container images only (codeConfiguration is not supported).")
        return self._resolve_image(container["containerUri"], account, region)

    # -- endpoints ---------------------------------------------------------------------------
    def _new_endpoint(self, doc: dict, name: str, version: str, description: str | None, now: float) -> dict:
        return {
            "name": name, "id": f"{name}-{_suffix()}",
            "agentRuntimeEndpointArn": f"{doc['arn']}/runtime-endpoint/{name}",
            "targetVersion": version, "liveVersion": None, "status": "CREATING",
            "settle_at": now + self.transition_seconds, "createdAt": now, "lastUpdatedAt": now,
            "description": description,
        }

    def create_endpoint(self, runtime_id: str, name: str, version: str | None, description: str | None,
                        account: str, region: str) -> tuple[dict, dict]:
        with self._lock:
            doc = self._load(runtime_id, account, region)
            if name in doc["endpoints"]:
                raise ConflictException(f"AgentRuntimeEndpoint {name} already exists for runtime {runtime_id}.")
            version = self._known_version(doc, version)
            ep = self._new_endpoint(doc, name, version, description, _now())
            doc["endpoints"][name] = ep
            self._save(doc)
            return doc, ep

    def get_endpoint(self, runtime_id: str, name: str, account: str, region: str) -> tuple[dict, dict]:
        with self._lock:
            doc = self._load(runtime_id, account, region)
            if name not in doc["endpoints"]:
                raise endpoint_not_found(runtime_id, name)
            return doc, doc["endpoints"][name]

    def update_endpoint(self, runtime_id: str, name: str, version: str | None, description: str | None,
                        account: str, region: str) -> tuple[dict, dict]:
        with self._lock:
            doc, ep = self.get_endpoint(runtime_id, name, account, region)
            if name == DEFAULT_ENDPOINT:
                raise ValidationException("The DEFAULT endpoint always serves the latest version and cannot be "
                                          "updated; update the runtime, or create a named endpoint.")
            if ep["status"] != "READY":
                raise ConflictException(f"AgentRuntimeEndpoint {name} is {ep['status']}; update it once READY.")
            now = _now()
            ep.update(targetVersion=self._known_version(doc, version), status="UPDATING",
                      settle_at=now + self.transition_seconds, lastUpdatedAt=now)
            if description is not None:
                ep["description"] = description
            self._save(doc)
            return doc, ep

    def delete_endpoint(self, runtime_id: str, name: str, account: str, region: str) -> tuple[dict, dict]:
        with self._lock:
            doc, ep = self.get_endpoint(runtime_id, name, account, region)
            if name == DEFAULT_ENDPOINT:
                raise ConflictException("The DEFAULT endpoint is deleted with its runtime; "
                                        "delete the runtime instead.")
            now = _now()
            ep.update(status="DELETING", settle_at=now + self.transition_seconds, lastUpdatedAt=now)
            self._save(doc)
            return doc, ep

    @staticmethod
    def _known_version(doc: dict, version: str | None) -> str:
        if version is None:
            return doc["latest"]
        if version not in doc["versions"]:
            raise ValidationException(f"agentRuntimeVersion {version} does not exist for runtime {doc['id']}; "
                                      f"its versions are 1 to {doc['latest']}.")
        return version

    # -- what an invocation runs -------------------------------------------------------------
    def resolve_qualifier(self, doc: dict, qualifier: str | None) -> str:
        """The version an invocation with this qualifier (endpoint name or version number) runs."""
        qualifier = qualifier or DEFAULT_ENDPOINT
        if qualifier in doc["endpoints"]:
            ep = doc["endpoints"][qualifier]
            if ep["liveVersion"] is None:
                raise RetryableConflictException(f"Endpoint {qualifier} of runtime {doc['id']} is {ep['status']}; "
                                                 "invoke it once it is READY.")
            return ep["liveVersion"]
        if qualifier in doc["versions"]:
            return qualifier
        raise endpoint_not_found(doc["id"], qualifier)


# Per compute type (devguide, runtime-lifecycle-settings, "Validation and constraints"): a runtime on
# microVMs takes 60-28800 s for both values, one on a capacity provider (instances) up to 1209600 s
# (botocore's range); and idleRuntimeSessionTimeout must not exceed maxLifetime.
MICROVM_MAX_LIFECYCLE = 28800


def check_lifecycle(params: dict) -> None:
    lifecycle = params.get("lifecycleConfiguration") or {}
    idle, life = lifecycle.get("idleRuntimeSessionTimeout"), lifecycle.get("maxLifetime")
    if not params.get("capacityProviderConfiguration"):
        for name, value in (("idleRuntimeSessionTimeout", idle), ("maxLifetime", life)):
            if value is not None and value > MICROVM_MAX_LIFECYCLE:
                raise ValidationException(
                    f"lifecycleConfiguration.{name} is {value}s; a runtime on microVMs takes at most "
                    f"{MICROVM_MAX_LIFECYCLE}s (8 hours). Choose a value from 60 to {MICROVM_MAX_LIFECYCLE}.")
    effective_idle = idle if idle is not None else min(DEFAULT_LIFECYCLE["idleRuntimeSessionTimeout"],
                                                       life if life is not None else 28800)
    effective_life = life if life is not None else DEFAULT_LIFECYCLE["maxLifetime"]
    if effective_idle > effective_life:
        raise ValidationException(
            f"lifecycleConfiguration.idleRuntimeSessionTimeout ({effective_idle}s) must be less than or equal to "
            f"maxLifetime ({effective_life}s).")


def _spec(params: dict) -> dict:
    spec = {k: v for k, v in params.items() if k not in _NOT_SPEC}
    spec.setdefault("networkConfiguration", {"networkMode": "PUBLIC"})
    spec.setdefault("protocolConfiguration", {"serverProtocol": "HTTP"})
    given = spec.get("lifecycleConfiguration") or {}
    # AWS's defaults when a value is left out; with only maxLifetime given and at most 900 s, idle follows it.
    idle = given.get("idleRuntimeSessionTimeout")
    if idle is None:
        idle = min(DEFAULT_LIFECYCLE["idleRuntimeSessionTimeout"], given.get("maxLifetime") or 28800)
    spec["lifecycleConfiguration"] = {"idleRuntimeSessionTimeout": idle,
                                      "maxLifetime": given.get("maxLifetime") or DEFAULT_LIFECYCLE["maxLifetime"]}
    return spec
