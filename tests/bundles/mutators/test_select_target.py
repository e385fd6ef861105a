from bundles.mutators import select_target

TARGETS = """\
bundle: {name: shop}
targets:
  dev:
    default: true
    mode: development
  prod:
    mode: production
"""


def test_the_requested_target_is_selected(state_from):
    state = state_from(TARGETS, requested_target="prod")
    assert select_target.apply(state) == []
    assert state.target == "prod" and state.target_cfg == {"mode": "production"} and not state.stopped


def test_without_a_request_the_default_target_is_selected(state_from):
    state = state_from(TARGETS)
    assert select_target.apply(state) == []
    assert state.target == "dev" and state.target_cfg["default"] is True


def test_an_unknown_target_stops_with_a_suggestion(state_from):
    state = state_from(TARGETS, requested_target="prd")
    diags = [d.render() for d in select_target.apply(state)]
    assert diags == ["bundle.yml:2: unknown target 'prd' (targets: dev, prod) (did you mean 'prod'?)"]
    assert state.stopped and state.target is None


def test_no_default_target_stops(state_from):
    state = state_from(TARGETS.replace("    default: true\n", ""))
    diags = [d.render() for d in select_target.apply(state)]
    assert diags == ["bundle.yml:2: no target given: pass -t <target> or mark one target `default: true`"]
    assert state.stopped


def test_no_targets_stops(state_from):
    state = state_from("bundle: {name: shop}\n")
    diags = [d.render() for d in select_target.apply(state)]
    assert diags == ["bundle.yml:1: bundle.yml defines no `targets`"]
    assert state.stopped


def test_an_empty_target_has_an_empty_configuration(state_from):
    state = state_from("bundle: {name: shop}\ntargets:\n  dev:\n", requested_target="dev")
    assert select_target.apply(state) == []
    assert state.target == "dev" and state.target_cfg == {}
