"""AgentCore Memory's control plane: memories and their strategies, their lifecycle (CREATING, ACTIVE,
DELETING) on the clock, and CreateMemory's idempotency (bedrock-agentcore-control)."""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import string
from typing import Any, Iterable

from ..core import paginator
from . import strategies as rules
from .exceptions import ConflictException, ResourceNotFoundException, ServiceQuotaExceededException, ValidationException
from .schema import _epoch, _now, _ts

MAX_STRATEGIES = 6
# AWS documents event expiry of up to 365 days (the model's own bound is looser).
MAX_EVENT_EXPIRY_DAYS = 365
TEMPLATE_VARIABLES = {"actorId", "sessionId", "memoryStrategyId"}
DEFAULT_TEMPLATES = {
    rules.SEMANTIC: "/strategies/{memoryStrategyId}/actors/{actorId}/",
    rules.SUMMARIZATION: "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
    rules.USER_PREFERENCE: "/strategies/{memoryStrategyId}/actors/{actorId}/",
    rules.EPISODIC: "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
    rules.CUSTOM: "custom/{actorId}/{sessionId}/",
}
OVERRIDE_TYPES = {"semanticOverride": "SEMANTIC_OVERRIDE", "summaryOverride": "SUMMARY_OVERRIDE",
                  "userPreferenceOverride": "USER_PREFERENCE_OVERRIDE", "episodicOverride": "EPISODIC_OVERRIDE"}
_MEMORY_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:memory/(.+)$")
_ALNUM = string.ascii_letters + string.digits


def memory_id_of(value: str) -> str:
    """The id from a memory id or ARN (the data plane takes either)."""
    m = _MEMORY_ARN.match(value)
    return m.group(1) if m else value


def _with_times(doc: dict) -> dict:
    """A memory document read back from JSON, its epoch-second times datetimes again."""
    times = {k: _ts(doc[k]) for k in ("createdAt", "updatedAt") if doc.get(k) is not None}
    strategies = [_with_times(s) for s in doc.get("strategies") or []]
    return {**doc, **times, **({"strategies": strategies} if "strategies" in doc else {})}


def _suffix(n: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _fingerprint(doc: Any) -> str:
    """What CreateMemory's clientToken is checked against: the request without the token."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _override_doc(override_type: str, body: dict) -> dict:
    """A custom strategy's steps as GetMemory answers them (StrategyConfiguration in botocore's control model)."""
    step = {"SEMANTIC_OVERRIDE": "semantic", "SUMMARY_OVERRIDE": "summary",
            "USER_PREFERENCE_OVERRIDE": "userPreference", "EPISODIC_OVERRIDE": "episodic"}.get(override_type)
    doc: dict = {}
    if step is None:  # SELF_MANAGED, kept in state dirs from before such strategies were refused
        return doc
    if body.get("extraction"):
        doc["extraction"] = {"customExtractionConfiguration": {f"{step}ExtractionOverride": body["extraction"]}}
    if body.get("consolidation"):
        doc["consolidation"] = {"customConsolidationConfiguration": {
            f"{step}ConsolidationOverride": body["consolidation"]}}
    if body.get("reflection"):
        reflection = {k: v for k, v in body["reflection"].items() if k in ("appendToPrompt", "modelId")}
        template = (body["reflection"].get("namespaceTemplates") or body["reflection"].get("namespaces") or [None])[0]
        if template:
            reflection.update(namespaces=[template], namespaceTemplates=[template])
        doc["reflection"] = {"customReflectionConfiguration": {"episodicReflectionOverride": reflection}}
    return doc


class ControlPlane:
    """Memories and strategies (mixed into MemoryBackend, whose database, lock and settings it uses)."""

    def _advance(self) -> None:
        """Move memories whose time has come from CREATING to ACTIVE, and DELETING to gone."""
        now = _now()
        if now < self._next_transition:
            return
        db = self._db
        with self._tx():
            ready = [r["id"] for r in db.execute(
                "SELECT id FROM memories WHERE status='CREATING' AND ready_at<=?", (now,))]
            for mid in ready:
                db.execute("UPDATE memories SET status='ACTIVE', updated_at=ready_at WHERE id=?", (mid,))
                db.execute("UPDATE strategies SET status='ACTIVE', updated_at=? WHERE memory_id=? "
                           "AND status='CREATING'", (now, mid))
            gone_rows = db.execute("SELECT * FROM memories WHERE status='DELETING' AND gone_at<=?", (now,)).fetchall()
            for row in gone_rows:
                if row["client_token"]:
                    # The answer a retried create gets once the memory is gone: the one its creation got.
                    answer = {**self._memory_doc(row), "status": "CREATING"}
                    answer["updatedAt"] = answer["createdAt"]
                    for strategy in answer["strategies"]:
                        strategy.update(status="CREATING", updatedAt=strategy["createdAt"])
                    db.execute("INSERT OR REPLACE INTO deleted_tokens VALUES (?,?,?,?,?,?)",
                               (row["account"], row["region"], row["client_token"], row["request_hash"] or "",
                                json.dumps(answer, default=_epoch), now + self.idempotency_window))
            db.execute("DELETE FROM deleted_tokens WHERE forget_at<=?", (now,))
            gone = [r["id"] for r in gone_rows]
            for mid in gone:
                for table in ("strategies", "events", "sessions", "records", "extraction_jobs",
                              "extraction_progress", "extraction_failures"):
                    db.execute(f"DELETE FROM {table} WHERE memory_id=?", (mid,))
                db.execute("DELETE FROM memories WHERE id=?", (mid,))
                self._vectors.pop(mid, None)
            # Strategies added by UpdateMemory become ACTIVE on the same clock.
            db.execute("UPDATE strategies SET status='ACTIVE', updated_at=? WHERE status='CREATING' AND "
                       "created_at<=? AND memory_id IN (SELECT id FROM memories WHERE status='ACTIVE')",
                       (now, now - self.activation_delay))
            row = db.execute(
                "SELECT MIN(t) FROM (SELECT ready_at AS t FROM memories WHERE status='CREATING' "
                "UNION ALL SELECT gone_at FROM memories WHERE status='DELETING' "
                "UNION ALL SELECT created_at + ? FROM strategies WHERE status='CREATING')",
                (self.activation_delay,)).fetchone()
            self._next_transition = row[0] if row[0] is not None else float("inf")

    def _memory_row(self, memory_id: str, account: str, region: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM memories WHERE id=? AND account=? AND region=?",
                               (memory_id_of(memory_id), account, region)).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Memory {memory_id_of(memory_id)} was not found in {region}.")
        return row

    def _usable_memory(self, memory_id: str, account: str, region: str) -> sqlite3.Row:
        """A memory the data plane may use: it exists and is ACTIVE."""
        self._advance()
        row = self._memory_row(memory_id, account, region)
        if row["status"] == "DELETING":
            raise ResourceNotFoundException(f"Memory {row['id']} is being deleted.")
        if row["status"] != "ACTIVE":
            raise ValidationException(f"Memory {row['id']} is {row['status']}; it accepts data operations "
                                      f"once it is ACTIVE. Wait for GetMemory to report ACTIVE.")
        return row

    # -- control plane -------------------------------------------------------------------------
    def create_memory(self, params: dict, account: str, region: str) -> dict:
        name = params["name"]
        expiry = params["eventExpiryDuration"]
        if expiry > MAX_EVENT_EXPIRY_DAYS:
            raise ValidationException(f"eventExpiryDuration is {expiry} days; it must be between 3 and "
                                      f"{MAX_EVENT_EXPIRY_DAYS} days.")
        token = params.get("clientToken") or None
        request = {k: v for k, v in params.items() if k != "clientToken"}
        request_hash = _fingerprint(request)
        namespace_keys = {k["key"] for k in params.get("namespaceKeys") or []}
        specs = [self._strategy_spec(s, i, namespace_keys, "memoryStrategies")
                 for i, s in enumerate(params.get("memoryStrategies") or [])]
        self._check_strategy_set(specs, "memoryStrategies")
        with self._lock:
            self._advance()
            db = self._db
            if token:
                same = db.execute("SELECT * FROM memories WHERE account=? AND region=? AND client_token=?",
                                  (account, region, token)).fetchone()
                if same is not None:
                    if same["request_hash"] != request_hash:
                        raise ConflictException(
                            f"clientToken {token!r} was already used to create memory {same['id']} with "
                            f"different parameters; use a new clientToken for a different request.")
                    return {"memory": self._memory_doc(same)}
                spent = db.execute("SELECT * FROM deleted_tokens WHERE account=? AND region=? AND client_token=?"
                                   " AND forget_at>?", (account, region, token, _now())).fetchone()
                if spent is not None:
                    answer = json.loads(spent["answer"])
                    if spent["request_hash"] != request_hash:
                        raise ConflictException(
                            f"clientToken {token!r} was already used to create memory {answer['id']} with "
                            f"different parameters; use a new clientToken for a different request.")
                    # Ignored, as AWS ignores a repeated token: the first answer again, for a memory now gone.
                    return {"memory": _with_times(answer)}
            if db.execute("SELECT 1 FROM memories WHERE account=? AND region=? AND name=?",
                          (account, region, name)).fetchone():
                raise ValidationException(f"Memory with name {name} already exists in {region}; "
                                          f"choose another name or use the existing memory.")
            count = db.execute("SELECT COUNT(*) FROM memories WHERE account=? AND region=?",
                               (account, region)).fetchone()[0]
            if count >= self.max_memories:
                raise ServiceQuotaExceededException(
                    f"This account already has {count} memories in {region}, the most allowed; "
                    f"delete one first.")
            now = _now()
            mid = f"{name}-{_suffix()}"
            extra = {k: params[k] for k in ("indexedKeys", "namespaceKeys", "streamDeliveryResources", "tags")
                     if params.get(k)}
            with self._tx():
                db.execute(
                    "INSERT INTO memories (id, account, region, name, description, encryption_key_arn, role_arn,"
                    " event_expiry, status, created_at, updated_at, ready_at, client_token, request_hash, extra)"
                    " VALUES (?,?,?,?,?,?,?,?,'CREATING',?,?,?,?,?,?)",
                    (mid, account, region, name, params.get("description"), params.get("encryptionKeyArn"),
                     params.get("memoryExecutionRoleArn"), expiry, now, now, now + self.activation_delay, token,
                     request_hash, json.dumps(extra, default=str)))
                for spec in specs:
                    self._insert_strategy(mid, spec, now)
            self._next_transition = min(self._next_transition, now + self.activation_delay)
            return {"memory": self._memory_doc(self._memory_row(mid, account, region))}

    def _strategy_spec(self, union: dict, position: int, namespace_keys: set[str], field: str) -> dict:
        (member, body), = union.items()
        kind = rules.INPUT_TYPES[member]
        where = f"{field}[{position}].{member}"
        configuration, settings = None, {}
        reflection = body.get("reflectionConfiguration")
        if kind == rules.CUSTOM:
            config = body.get("configuration") or {}
            override = next(iter(config), None)
            if override == "selfManagedConfiguration":
                # AWS hands a self-managed strategy's events to the caller's SNS topic and S3 bucket for the
                # caller's own pipeline; the emulator runs no such delivery, and accepting the strategy would
                # extract nothing without a word.
                raise ValidationException(
                    f"{where}.configuration.selfManagedConfiguration: the local emulator does not deliver events to "
                    f"self-managed pipelines (SNS and S3); use a built-in strategy or an override "
                    f"(semanticOverride, summaryOverride, userPreferenceOverride, episodicOverride) locally.")
            configuration = OVERRIDE_TYPES.get(override)
            settings["override"] = config.get(override) or {}
            if override == "episodicOverride":
                reflection = settings["override"].get("reflection")
        template = self._template(body, kind, namespace_keys, where)
        if kind == rules.EPISODIC or configuration == "EPISODIC_OVERRIDE":
            if not reflection or not (reflection.get("namespaceTemplates") or reflection.get("namespaces")):
                # AWS requires the reflections' namespace (bedrock-agentcore-sdk-python's add_episodic_strategy
                # refuses to call without it, as the service would).
                raise ValidationException(
                    f"{where}: an episodic strategy needs reflectionConfiguration.namespaceTemplates, the namespace "
                    f"its reflections go to (it can be less nested than the episodes' namespace, e.g. "
                    f"/strategies/{{memoryStrategyId}}/actors/{{actorId}}/).")
            settings["reflection"] = self._template(reflection, kind, namespace_keys, f"{where}.reflection")
        return {"name": body["name"], "description": body.get("description"), "type": kind,
                "template": template, "override": configuration, "position": position, "settings": settings}

    @staticmethod
    def _template(body: dict, kind: str, namespace_keys: set[str], where: str) -> str:
        templates = body.get("namespaceTemplates")
        legacy = body.get("namespaces")
        if templates and legacy and templates != legacy:
            raise ValidationException(f"{where}: namespaces and namespaceTemplates differ; give only "
                                      f"namespaceTemplates (namespaces is its older name).")
        chosen = (templates or legacy or [DEFAULT_TEMPLATES[kind]])[0]
        allowed = TEMPLATE_VARIABLES | namespace_keys
        for variable in re.findall(r"\{([^}]*)\}", chosen):
            if variable not in allowed:
                raise ValidationException(
                    f"{where}.namespaceTemplates: {{{variable}}} is not a namespace variable; use "
                    f"{{actorId}}, {{sessionId}} or {{memoryStrategyId}} (or declare it in namespaceKeys).")
        return chosen

    @staticmethod
    def _check_strategy_set(specs: list[dict], field: str, existing: Iterable[str] = ()) -> None:
        names = list(existing)
        for spec in specs:
            if spec["name"] in names:
                raise ValidationException(f"{field}: two strategies are named {spec['name']}; "
                                          f"strategy names must be unique within a memory.")
            names.append(spec["name"])
        if len(names) > MAX_STRATEGIES:
            raise ValidationException(f"{field}: a memory has at most {MAX_STRATEGIES} strategies; "
                                      f"this request would give it {len(names)}.")

    def _insert_strategy(self, memory_id: str, spec: dict, now: float) -> str:
        sid = f"{spec['name']}-{_suffix()}"
        self._db.execute(
            "INSERT INTO strategies (id, memory_id, position, name, description, type, template, configuration,"
            " status, created_at, updated_at, settings) VALUES (?,?,?,?,?,?,?,?,'CREATING',?,?,?)",
            (sid, memory_id, spec["position"], spec["name"], spec["description"], spec["type"],
             spec["template"], spec["override"], now, now, json.dumps(spec["settings"])))
        return sid

    def _memory_doc(self, row: sqlite3.Row) -> dict:
        doc = {
            "arn": f"arn:aws:bedrock-agentcore:{row['region']}:{row['account']}:memory/{row['id']}",
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "encryptionKeyArn": row["encryption_key_arn"],
            "memoryExecutionRoleArn": row["role_arn"],
            "eventExpiryDuration": row["event_expiry"],
            "status": row["status"],
            "createdAt": _ts(row["created_at"]),
            "updatedAt": _ts(row["updated_at"]),
            "strategies": [self._strategy_doc(s) for s in self._db.execute(
                "SELECT * FROM strategies WHERE memory_id=? ORDER BY position, created_at", (row["id"],))],
        }
        extra = json.loads(row["extra"] or "{}")
        for key in ("indexedKeys", "namespaceKeys", "streamDeliveryResources"):
            if key in extra:
                doc[key] = extra[key]
        return doc

    @staticmethod
    def _strategy_doc(row: sqlite3.Row) -> dict:
        doc = {
            "strategyId": row["id"],
            "name": row["name"],
            "description": row["description"],
            "type": row["type"],
            # AWS answers both names for the one template a strategy has.
            "namespaces": [row["template"]],
            "namespaceTemplates": [row["template"]],
            "createdAt": _ts(row["created_at"]),
            "updatedAt": _ts(row["updated_at"]),
            "status": row["status"],
        }
        settings = json.loads(row["settings"] or "{}")
        if row["configuration"]:
            doc["configuration"] = {"type": row["configuration"], **_override_doc(row["configuration"],
                                                                                 settings.get("override") or {})}
        if row["type"] == rules.EPISODIC and settings.get("reflection"):
            doc["configuration"] = {"reflection": {"episodicReflectionConfiguration": {
                "namespaces": [settings["reflection"]], "namespaceTemplates": [settings["reflection"]]}}}
        return doc

    def get_memory(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            self._advance()
            return {"memory": self._memory_doc(self._memory_row(params["memoryId"], account, region))}

    def list_memories(self, params: dict, account: str, region: str) -> dict:
        limit = params.get("maxResults") or 100
        scope = paginator.scope("ListMemories", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            self._advance()
            rows = self._db.execute(
                "SELECT * FROM memories WHERE account=? AND region=? ORDER BY created_at, id LIMIT ? OFFSET ?",
                (account, region, limit + 1, offset)).fetchall()
        out = {"memories": [{
            "arn": f"arn:aws:bedrock-agentcore:{r['region']}:{r['account']}:memory/{r['id']}",
            "id": r["id"], "status": r["status"],
            "createdAt": _ts(r["created_at"]), "updatedAt": _ts(r["updated_at"]),
        } for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
        return out

    def update_memory(self, params: dict, account: str, region: str) -> dict:
        expiry = params.get("eventExpiryDuration")
        if expiry is not None and expiry > MAX_EVENT_EXPIRY_DAYS:
            raise ValidationException(f"eventExpiryDuration is {expiry} days; it must be between 3 and "
                                      f"{MAX_EVENT_EXPIRY_DAYS} days.")
        with self._lock:
            self._advance()
            row = self._memory_row(params["memoryId"], account, region)
            if row["status"] != "ACTIVE":
                raise ConflictException(f"Memory {row['id']} is {row['status']}; it can be updated once it "
                                        f"is ACTIVE.")
            mid = row["id"]
            db = self._db
            extra = json.loads(row["extra"] or "{}")
            namespace_keys = {k["key"] for k in (params.get("namespaceKeys") or extra.get("namespaceKeys") or [])}
            changes = params.get("memoryStrategies") or {}
            current = {s["id"]: s for s in db.execute("SELECT * FROM strategies WHERE memory_id=?", (mid,))}
            deleted = [d["memoryStrategyId"] for d in changes.get("deleteMemoryStrategies") or []]
            for i, sid in enumerate(deleted):
                if sid not in current:
                    raise ValidationException(f"memoryStrategies.deleteMemoryStrategies[{i}]: memory {mid} has "
                                              f"no strategy {sid}.")
            modified = changes.get("modifyMemoryStrategies") or []
            for i, mod in enumerate(modified):
                if mod["memoryStrategyId"] not in current:
                    raise ValidationException(f"memoryStrategies.modifyMemoryStrategies[{i}]: memory {mid} has "
                                              f"no strategy {mod['memoryStrategyId']}.")
            base = max([s["position"] for s in current.values()] + [-1]) + 1
            added = [self._strategy_spec(s, base + i, namespace_keys, "memoryStrategies.addMemoryStrategies")
                     for i, s in enumerate(changes.get("addMemoryStrategies") or [])]
            remaining = [s["name"] for sid, s in current.items() if sid not in deleted]
            self._check_strategy_set(added, "memoryStrategies.addMemoryStrategies", remaining)
            now = _now()
            with self._tx():
                for sid in deleted:
                    db.execute("DELETE FROM strategies WHERE id=?", (sid,))
                    # A failed run of a strategy that is gone can no longer be started again.
                    db.execute("DELETE FROM extraction_failures WHERE strategy_id=?", (sid,))
                for i, mod in enumerate(modified):
                    old = current[mod["memoryStrategyId"]]
                    template = old["template"]
                    if mod.get("namespaceTemplates") or mod.get("namespaces"):
                        template = self._template(mod, old["type"], namespace_keys,
                                                  f"memoryStrategies.modifyMemoryStrategies[{i}]")
                    db.execute("UPDATE strategies SET description=COALESCE(?, description), template=?, "
                               "updated_at=? WHERE id=?", (mod.get("description"), template, now, old["id"]))
                for spec in added:
                    self._insert_strategy(mid, spec, now)
                if params.get("namespaceKeys") is not None:
                    extra["namespaceKeys"] = params["namespaceKeys"]
                if params.get("addIndexedKeys"):
                    extra["indexedKeys"] = (extra.get("indexedKeys") or []) + params["addIndexedKeys"]
                if params.get("streamDeliveryResources") is not None:
                    extra["streamDeliveryResources"] = params["streamDeliveryResources"]
                db.execute("UPDATE memories SET description=COALESCE(?, description), "
                           "event_expiry=COALESCE(?, event_expiry), role_arn=COALESCE(?, role_arn), "
                           "extra=?, updated_at=? WHERE id=?",
                           (params.get("description"), expiry, params.get("memoryExecutionRoleArn"),
                            json.dumps(extra, default=str), now, mid))
            if added:
                self._next_transition = min(self._next_transition, now + self.activation_delay)
            return {"memory": self._memory_doc(self._memory_row(mid, account, region))}

    def delete_memory(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            self._advance()
            row = self._memory_row(params["memoryId"], account, region)
            if row["status"] != "DELETING":
                gone_at = _now() + self.deletion_delay
                with self._tx():
                    self._db.execute("UPDATE memories SET status='DELETING', gone_at=?, updated_at=? WHERE id=?",
                                     (gone_at, _now(), row["id"]))
                    self._db.execute("DELETE FROM extraction_jobs WHERE memory_id=?", (row["id"],))
                self._next_transition = min(self._next_transition, gone_at)
            return {"memoryId": row["id"], "status": "DELETING"}
