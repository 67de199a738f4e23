"""AgentCore Memory's responses: each botocore operation to the backend method that answers it.

As in every service of the emulator, a handler takes the parameters emulator/core/restjson.py parsed from
botocore's model, calls the backend with the caller's account and region (in that order), and returns the
members of the operation's output shape, which restjson serialises. State and rules live in models.py.
Unlike the runtime's and Bedrock's backends, which take named arguments, the memory backend's methods still
take the whole parameter dict and answer the output members themselves (issue 9 left that step open).
"""
from __future__ import annotations

from ..core.backend import Backend
from ..core.restjson import RequestContext
from ..core.settings import Settings
from .models import MemoryBackend

# Control plane (bedrock-agentcore-control) and data plane (bedrock-agentcore) operations.
OPERATIONS = {
    "CreateMemory": "create_memory",
    "GetMemory": "get_memory",
    "ListMemories": "list_memories",
    "UpdateMemory": "update_memory",
    "DeleteMemory": "delete_memory",
    "CreateEvent": "create_event",
    "GetEvent": "get_event",
    "ListEvents": "list_events",
    "DeleteEvent": "delete_event",
    "ListSessions": "list_sessions",
    "ListActors": "list_actors",
    "RetrieveMemoryRecords": "retrieve_memory_records",
    "ListMemoryRecords": "list_memory_records",
    "GetMemoryRecord": "get_memory_record",
    "DeleteMemoryRecord": "delete_memory_record",
    "BatchCreateMemoryRecords": "batch_create_memory_records",
    "BatchUpdateMemoryRecords": "batch_update_memory_records",
    "BatchDeleteMemoryRecords": "batch_delete_memory_records",
    "ListMemoryExtractionJobs": "list_memory_extraction_jobs",
    "StartMemoryExtractionJob": "start_memory_extraction_job",
}


def _handler(model: MemoryBackend, method: str):
    bound = getattr(model, method)

    def handle(params: dict, ctx: RequestContext) -> dict:
        return bound(params, ctx.account_id, ctx.region)

    handle.__name__ = method
    return handle


def create_backend(settings: Settings) -> Backend:
    model = MemoryBackend(settings)
    return Backend("memory", {op: _handler(model, method) for op, method in OPERATIONS.items()}, close=model.close)
