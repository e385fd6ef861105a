"""The pipeline itself: `run` collects diagnostics in step order and honours `stopped`."""

from bundles import loader
from bundles.mutators import LoadState, run
from core.diagnostics import Diagnostic


class _Step:
    def __init__(self, name, stop=False):
        self.name, self.stop, self.calls = name, stop, 0

    def apply(self, state):
        self.calls += 1
        state.stopped = self.stop
        return [Diagnostic("warning", self.name)]


def test_run_collects_each_steps_diagnostics_in_order_and_stops_when_asked(tmp_path):
    first, stopper, never = _Step("first"), _Step("stopper", stop=True), _Step("never")
    state = run(LoadState(root=tmp_path), [first, stopper, never])
    assert [d.message for d in state.diagnostics] == ["first", "stopper"]
    assert never.calls == 0


def test_every_listed_step_is_a_module_with_apply():
    names = [step.__name__.rsplit(".", 1)[-1] for step in loader.STEPS]
    assert names[0] == "load_root" and names[-1] == "warn_unused_variables"
    assert len(set(names)) == len(names)
    assert all(callable(step.apply) for step in loader.STEPS)
