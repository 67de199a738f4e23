"""What 03_build_image must leave: a local-build image in the stack's repository, and a re-run that pushes nothing."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("03_build_image")
def pushes_the_agent_image_tagged_by_its_context(workshop, executed):
    from helpers import image, stack

    shown = cell_text(executed, "image.build_and_push(settings, method=BUILD_METHOD)")
    repo_uri = stack.stack_outputs(workshop.settings)["RepositoryUri"]
    tag = image.pack_context(image.CONTAINER_DIR).tag
    assert f"{repo_uri}:{tag}" in shown and "method='local'" in shown
    ecr = workshop.emulator.client("ecr")
    details = ecr.describe_images(repositoryName=repo_uri.split("/", 1)[1])["imageDetails"]
    assert any({"latest", tag} <= set(d.get("imageTags", [])) for d in details)


@check("03_build_image")
def building_again_pushes_nothing(workshop, executed):
    assert recorded_value(executed, "build_again")["pushed"] is False
