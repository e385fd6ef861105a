"""The resource-kind registry is the one list of kinds (bundles/resources/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bundles import models
from bundles.planner import Action, order_key
from bundles.resources import KINDS, NAMED_KINDS, ResourceKind

REPO = Path(__file__).resolve().parents[2]


def test_the_bundle_models_and_the_loader_list_come_from_the_registry():
    assert NAMED_KINDS == ("experiments", "registered_models", "jobs", "feature_tables", "serving_endpoints", "monitors")
    assert models.RESOURCE_KINDS == NAMED_KINDS == KINDS.declared()
    assert tuple(models.Resources.model_fields) == NAMED_KINDS
    assert KINDS.names() == ("artifact", *NAMED_KINDS)  # the code first: every job runs it


def test_apply_order_is_registry_order_and_deletes_reverse_it():
    actions = [Action("create", "monitors.m", "monitors", "m"), Action("create", "artifact", "artifact", None),
               Action("delete", "experiments.e", "experiments", "e"), Action("create", "jobs.j", "jobs", "j"),
               Action("delete", "monitors.old", "monitors", "old"), Action("create", "gone.x", "gone", "x")]
    assert [a.key for a in sorted(actions, key=order_key)] == \
        ["artifact", "jobs.j", "monitors.m", "gone.x", "monitors.old", "experiments.e"]


def test_a_kind_is_registered_once():
    class Twice(ResourceKind):
        name = "experiments"

    with pytest.raises(ValueError, match="registered twice"):
        KINDS.register(Twice())


def test_unknown_kind_is_one_clear_error():
    from bundles.errors import BundleError

    with pytest.raises(BundleError, match="unknown resource kind 'widgets' \\(known: artifact, experiments"):
        KINDS.get("widgets")


def test_a_new_kind_is_one_module_plus_one_registry_line(tmp_path):
    """The README checklist, followed once: validate, plan, deploy, drift, summary, delete."""
    proc = subprocess.run([sys.executable, "-m", "tests.bundles.widget_kind", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
