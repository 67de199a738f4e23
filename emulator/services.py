"""The services the emulator implements itself, beside moto's. Add a new one here."""
from __future__ import annotations

import re

from . import persistence
from .core.restjson import RestJsonService
from .core.settings import Settings
from .server import OwnService


def own_services(settings: Settings) -> list[OwnService]:
    from .bedrock.responses import create_backend as bedrock_backend
    from .memory.responses import create_backend as memory_backend
    from .runtime.responses import create_backend as runtime_backend

    from .memory import model_extraction

    # With a model upstream, long-term extraction asks that model first, as AWS's strategies do.
    model_extraction.configure(settings.model_upstream)
    memory = memory_backend(settings)
    runtime = runtime_backend(settings)
    bedrock = bedrock_backend(settings)
    return [
        # bedrock-agentcore (data plane) and bedrock-agentcore-control both sign as
        # "bedrock-agentcore" and their routes never overlap, so one router serves both.
        OwnService(
            signing_name="bedrock-agentcore",
            router=RestJsonService(["bedrock-agentcore", "bedrock-agentcore-control"],
                                   {**memory.handlers, **runtime.handlers}),
            # InvokeAgentRuntime with a bearer JWT (a runtime with a customJWTAuthorizer) is not SigV4-signed.
            unsigned_paths=re.compile(r"^/runtimes/.+/invocations$"),
            backends=[memory, runtime],
        ),
        # bedrock-runtime (InvokeModel*) and bedrock (ListInferenceProfiles) both sign as "bedrock".
        # Claude Code in a runtime signs them with the execution role's credentials (judged by IAM); run
        # outside one with CLAUDE_CODE_SKIP_BEDROCK_AUTH=1 it calls them unsigned, routed by path.
        OwnService(
            signing_name="bedrock",
            router=RestJsonService(["bedrock-runtime", "bedrock"], bedrock.handlers),
            unsigned_paths=re.compile(r"^/(model/|inference-profiles|foundation-models)"),
            backends=[bedrock],
        ),
    ]


def persistent_moto(settings: Settings) -> persistence.MotoState:
    """moto's services kept under the state dir (persistence.py): loaded now, saved after every write.

    A snapshot that cannot be read is moved aside and said on the console; the emulator then starts without it.
    """
    import logging

    state = persistence.MotoState(settings.state_dir)
    try:
        counts = state.load()
        state.remove_unreferenced_blobs()
    except persistence.PersistenceError as exc:  # said, and the old snapshot and its bodies kept for a person
        print(f"emulator: {exc}", flush=True)
        counts = {}
    persistence.install(state)
    if counts:
        logging.getLogger("emulator").info("moto state loaded from %s: %s", state.path,
                                           ", ".join(f"{name} ({n} region backends)" for name, n in sorted(counts.items())))
    return state
