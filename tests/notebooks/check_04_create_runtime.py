"""What 04_create_runtime must leave: a READY runtime on the latest image, deployment.json, and no-op re-runs."""
from __future__ import annotations

import json

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("04_create_runtime")
def the_runtime_is_ready_on_the_latest_image(workshop, executed):
    from helpers import image, runtime

    found = runtime.find_runtime(workshop.settings)
    assert found is not None and found["status"] == "READY"
    uri = found["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"]
    assert uri == image.latest_image_uri(workshop.settings)
    assert found["agentRuntimeArn"] in cell_text(executed, "runtime.runtime_info_df(settings)")
    saved = json.loads((workshop.settings.state_dir / "deployment.json").read_text())
    assert saved["agent_runtime_arn"] == found["agentRuntimeArn"] and saved["image_uri"] == uri


@check("04_create_runtime")
def running_it_again_changes_nothing(workshop, executed):
    assert recorded_value(executed, "runtime_again") == "unchanged"


@check("04_create_runtime")
def the_runtime_requires_mmdsv2_and_sets_its_lifecycle(workshop, executed):
    from helpers import runtime

    found = runtime.find_runtime(workshop.settings)
    assert found["metadataConfiguration"] == {"requireMMDSV2": True}
    assert found["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": runtime.IDLE_SESSION_TIMEOUT,
                                               "maxLifetime": runtime.MAX_SESSION_LIFETIME}
