"""AgentCore Memory's extraction jobs in the emulator, through boto3: a failed strategy run is listed as a FAILED
job with the messages it held, and StartMemoryExtractionJob runs it again."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.emulator.fixtures.anthropic_upstream import FakeAnthropic, Fault
from tests.support.emulator import EmulatorProcess
from tests.support.polling import wait_until
from tests.support.shapes import assert_output_shape

# A custom strategy names its own model and prompt; with an upstream the emulator asks the model with that prompt,
# and a model that cannot answer fails the job, as on AWS (the built-in strategies fall back to the rules instead).
CUSTOM_FACTS = {"customMemoryStrategy": {
    "name": "custom_facts", "namespaceTemplates": ["jobs/{actorId}/facts"],
    "configuration": {"semanticOverride": {"extraction": {
        "appendToPrompt": "Only keep facts about infrastructure.", "modelId": "anthropic.claude-sonnet-4"}}}}}


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def emu(fake, tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("jobs-emulator"),
                              env={**fake.env(), "EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    yield process
    process.stop()


def test_a_failed_extraction_is_listed_as_a_job_and_starting_it_extracts_the_events_again(emu, fake):
    control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
    memory = control.create_memory(name=f"Jobs_{uuid.uuid4().hex[:8]}", eventExpiryDuration=30,
                                   memoryStrategies=[CUSTOM_FACTS])["memory"]
    wait_until(lambda: control.get_memory(memoryId=memory["id"])["memory"]["status"], lambda s: s == "ACTIVE",
               what="memory ACTIVE")
    mid, strategy_id = memory["id"], memory["strategies"][0]["strategyId"]
    got = control.get_memory(memoryId=mid)
    assert_output_shape(control, "GetMemory", got)
    assert got["memory"]["strategies"][0]["configuration"] == {"type": "SEMANTIC_OVERRIDE", "extraction": {
        "customExtractionConfiguration": {"semanticExtractionOverride": CUSTOM_FACTS["customMemoryStrategy"][
            "configuration"]["semanticOverride"]["extraction"]}}}
    seen = []

    def answer(system, body):
        seen.append(system)
        return '{"facts": ["The cache runs on Redis 7."]}'

    fake.extraction_reply = answer
    fake.faults[:] = [Fault(status=400)]  # the model refuses the first extraction request
    try:
        event = data.create_event(
            memoryId=mid, actorId="ops", sessionId="s1", eventTimestamp=dt.datetime.now(dt.timezone.utc),
            payload=[{"conversational": {"content": {"text": "The cache runs on Redis 7."}, "role": "USER"}}])["event"]
        listed = wait_until(lambda: data.list_memory_extraction_jobs(memoryId=mid), lambda r: r["jobs"],
                            what="a failed job")
        assert_output_shape(data, "ListMemoryExtractionJobs", listed)
        job, = listed["jobs"]
        assert job["status"] == "FAILED" and job["strategyId"] == strategy_id
        assert (job["actorId"], job["sessionId"]) == ("ops", "s1")
        assert job["messages"] == {"messagesList": [{"eventId": event["eventId"], "messageIndex": 0}]}
        assert "invalid_request_error" in job["failureReason"] or "ValidationException" in job["failureReason"]
        assert data.list_memory_records(memoryId=mid, namespace="jobs/ops/facts")["memoryRecordSummaries"] == []
        for other in ({"actorId": "someone-else"}, {"sessionId": "s2"}, {"strategyId": "other-0123456789"}):
            assert data.list_memory_extraction_jobs(memoryId=mid, filter=other)["jobs"] == []
        assert data.list_memory_extraction_jobs(memoryId=mid, filter={"status": "FAILED"})["jobs"] == [job]

        # Started while the model still refuses: the job fails again and is listed again, with the new reason.
        fake.faults[:] = [Fault(status=403)]
        data.start_memory_extraction_job(memoryId=mid, extractionJob={"jobId": job["jobID"]})
        again = wait_until(lambda: data.list_memory_extraction_jobs(memoryId=mid)["jobs"],
                           lambda jobs: jobs and "403" in jobs[0]["failureReason"], what="the job failed again")
        assert [j["jobID"] for j in again] == [job["jobID"]] and not fake.faults

        started = data.start_memory_extraction_job(memoryId=mid, extractionJob={"jobId": job["jobID"]})
        assert_output_shape(data, "StartMemoryExtractionJob", started)
        assert started["jobId"] == job["jobID"]
        records = wait_until(lambda: data.list_memory_records(memoryId=mid, namespace="jobs/ops/facts"),
                             lambda r: r["memoryRecordSummaries"], what="the re-run's record")
        assert [r["content"]["text"] for r in records["memoryRecordSummaries"]] == ["The cache runs on Redis 7."]
        assert data.list_memory_extraction_jobs(memoryId=mid)["jobs"] == []
        assert seen and all(s.endswith("Only keep facts about infrastructure.") for s in seen)
    finally:
        fake.extraction_reply = None
        fake.faults.clear()
