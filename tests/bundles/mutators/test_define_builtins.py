from bundles.mutators import define_builtins
from bundles.mutators.define_builtins import current_user


def test_mode_user_git_and_bundle_values(state_from):
    state = state_from("bundle: {name: shop}\n", target="prod", target_cfg={"mode": "production"}, user="ana")
    assert define_builtins.apply(state) == []
    assert (state.mode, state.user, state.name) == ("production", "ana", "shop")
    assert state.builtins == {
        "bundle.name": "shop",
        "bundle.target": "prod",
        "bundle.mode": "production",
        "bundle.user": "ana",
        "bundle.git.commit": "unknown",  # tmp_path is no git checkout
        "bundle.git.branch": "",
    }


def test_defaults_development_mode_and_the_current_user(state_from, monkeypatch):
    monkeypatch.setenv("CONVEYOR_USER", "Ana.Lopez")
    state = state_from("targets: {}\n", target="dev")
    define_builtins.apply(state)
    assert (state.mode, state.user, state.name) == ("development", "ana_lopez", "bundle")


def test_current_user_is_a_safe_lowercase_name(monkeypatch):
    monkeypatch.setenv("CONVEYOR_USER", "J-Doe@Example")
    assert current_user() == "j_doe_example"
    monkeypatch.setenv("CONVEYOR_USER", "")
    assert current_user()  # falls back to the OS user
