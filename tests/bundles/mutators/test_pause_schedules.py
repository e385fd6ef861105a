from bundles.mutators import pause_schedules
from tests.bundles.mutators.conftest import read_doc

DOC = read_doc("pause_schedules.yml")


def test_development_pauses_every_schedule(state_from):
    state = state_from(DOC, mode="development")
    assert pause_schedules.apply(state) == []
    jobs = state.doc.data["resources"]["jobs"]
    assert jobs["nightly"]["schedule"] == {"cron": "0 2 * * *", "pause_status": "PAUSED"}
    assert "schedule" not in jobs["manual"]


def test_production_schedules_are_left_alone(state_from):
    state = state_from(DOC, mode="production")
    assert pause_schedules.apply(state) == []
    assert state.doc.data["resources"]["jobs"]["nightly"]["schedule"] == {"cron": "0 2 * * *"}
