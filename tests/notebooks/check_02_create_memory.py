"""What 02_create_memory must leave: one memory with the three strategies, its id in SSM, and a re-run that reuses it."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("02_create_memory")
def creates_one_memory_and_keeps_its_id_in_ssm(workshop, executed):
    emu = workshop.emulator
    memories = [m for m in emu.client("bedrock-agentcore-control").list_memories()["memories"]
                if m["id"].startswith(workshop.settings.memory_name + "-")]
    assert len(memories) == 1 and memories[0]["status"] == "ACTIVE"
    stored = emu.client("ssm").get_parameter(Name=workshop.settings.memory_id_parameter)["Parameter"]["Value"]
    assert stored == memories[0]["id"]
    assert stored in cell_text(executed, "memory.memory_id(settings)")


@check("02_create_memory")
def shows_the_three_strategies_and_reuses_the_memory_on_a_rerun(workshop, executed):
    table = cell_text(executed, "memory.strategies_df(settings)")
    for namespace in ("coding/user/{actorId}/facts", "coding/user/{actorId}/{sessionId}",
                      "coding/user/{actorId}/preferences"):
        assert namespace in table
    assert recorded_value(executed, "same_memory") is True
