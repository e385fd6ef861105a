"""Stack config: the committed stacks are valid, and every mistake names its key."""

from pathlib import Path

import pytest

from infra.config import ConfigError, check_no_collisions, parse, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = {"data_scientist": {"role": "write"}, "ml_engineer": {"role": "write"}, "ci": {"role": "write"}}


def raw(**overrides):
    base = {"platform": "local", "ports": {"tracking": 6101, "serving": 6102}, "access": {"personas": PERSONAS}}
    base.update(overrides)
    return base


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_committed_stacks_are_valid_and_isolated(env):
    cfg = parse(env, read_stack_file(ROOT / f"Pulumi.{env}.yaml"))
    check_no_collisions(cfg, ROOT)
    assert cfg.platform == "local"


def test_data_scientists_write_only_in_dev():
    roles = {env: parse(env, read_stack_file(ROOT / f"Pulumi.{env}.yaml")).access.personas for env in ("dev", "staging", "prod")}
    assert roles["dev"]["data_scientist"].role == "write"
    assert roles["staging"]["data_scientist"].role == "read"
    assert roles["prod"]["data_scientist"].role == "read"
    for env in roles:
        assert roles[env]["ci"].role == "write" and roles[env]["ml_engineer"].role == "write"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"platform": "nomad"}, "conveyor:platform: "),
        ({"ports": {"tracking": 6101, "serving": 6101}}, "conveyor:ports.serving: port 6101 is already used"),
        ({"ports": {"tracking": 6101}}, "conveyor:ports.serving: required key is missing"),
        ({"ports": {"tracking": 80, "serving": 6102}}, "conveyor:ports.tracking: "),
        ({"access": {"personas": {"ci": {"role": "write"}}}}, "conveyor:access.personas: "),
        ({"access": {"personas": {**PERSONAS, "ci": {"role": "admin"}}}}, "conveyor:access.personas.ci.role: "),
        ({"storage": {"retain": True}}, "conveyor:storage.retain: unknown key"),
    ],
)
def test_bad_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        parse("dev", raw(**overrides))
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_persona_is_named():
    personas = {k: v for k, v in PERSONAS.items() if k != "ml_engineer"}
    with pytest.raises(ConfigError, match="missing persona\\(s\\): ml_engineer"):
        parse("dev", raw(access={"personas": personas}))


def test_port_clash_with_another_stack(tmp_path):
    (tmp_path / "Pulumi.other.yaml").write_text("config:\n  conveyor:ports:\n    tracking: 7000\n    serving: 6102\n")
    cfg = parse("dev", raw())
    with pytest.raises(ConfigError, match="conveyor:ports.serving: port 6102 collides with conveyor:ports.serving of stack 'other'"):
        check_no_collisions(cfg, tmp_path)
