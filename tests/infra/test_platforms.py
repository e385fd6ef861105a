"""The platform registry: `conveyor:platform` picks the class registered under that name.

`test_a_new_platform_is_one_module_and_one_registry_line` follows the "add a platform"
checklist of infra/README.md: one new module, one line in `infra.platforms.PLATFORMS`,
and the real Pulumi program (`infra/__main__.py`, under mocks) builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.contract import EnvironmentOutputs
from infra import platforms
from infra.config import ConfigError, parse
from infra.environment import Environment

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = {"data_scientist": {"role": "read"}, "ml_engineer": {"role": "write"}, "ci": {"role": "write"}}

THROWAWAY = '''
"""A platform that runs nothing: the smallest class the Environment contract accepts."""

from core.contract import storage_layout
from infra.environment import Environment, EnvironmentArgs, credentials_output


class ThrowawayEnvironment(Environment):
    platform = "throwaway"

    def __init__(self, name: str, args: EnvironmentArgs, opts=None):
        super().__init__("conveyor:throwaway:Environment", name, None, opts)
        cfg = args.config
        self.env_name = cfg.env
        root = f"file:///nowhere/{cfg.env}"
        self.publish(tracking_uri=f"http://127.0.0.1:{cfg.ports.tracking}",
                     serving_url=f"http://127.0.0.1:{cfg.ports.serving}", storage_uri=root,
                     storage=storage_layout(root).model_dump(), credentials=credentials_output(args.personas))
'''


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """The two steps of the checklist: a module with the platform class, and its registry line."""
    (tmp_path / "throwaway_platform.py").write_text(textwrap.dedent(THROWAWAY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(platforms.PLATFORMS, "throwaway", "throwaway_platform:ThrowawayEnvironment")
    yield
    sys.modules.pop("throwaway_platform", None)


def stack_config(platform: str) -> dict:
    return {"platform": platform, "ports": {"tracking": 6901, "serving": 6902}, "access": {"personas": PERSONAS}}


# In a fresh interpreter: the Pulumi runtime's settings are process-global, and earlier
# in-process programs of the suite would otherwise share them with this one.
CHECKLIST_RUN = """
import json, runpy, sys
import pulumi
from pulumi.runtime.settings import get_root_resource
from infra import platforms
from tests.infra.pulumi_mocks import Mocks

sys.path.insert(0, sys.argv[1])
platforms.PLATFORMS["throwaway"] = "throwaway_platform:ThrowawayEnvironment"   # the registry line
mocks = Mocks()

@pulumi.runtime.test
def build():
    pulumi.runtime.set_mocks(mocks, project="conveyor", stack="scratch", preview=False)
    runpy.run_path(sys.argv[2], run_name="__main__")
    outputs = get_root_resource().outputs
    keys = sorted(outputs)
    return pulumi.Output.all(*[outputs[k] for k in keys]).apply(lambda values: got.update(zip(keys, values)))

got = {}
build()  # returns once every registration has reached the mocks (the outputs can resolve before)
print(json.dumps({"types": mocks.types, "outputs": got}))
"""


def test_a_new_platform_is_one_module_and_one_registry_line(tmp_path):
    (tmp_path / "throwaway_platform.py").write_text(textwrap.dedent(THROWAWAY))  # the platform module
    # none of the suite's own CONVEYOR_/PULUMI_ settings (left by earlier tests) may reach the program
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PULUMI_"))}
    env = {**clean, "CONVEYOR_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT),
           "PULUMI_CONFIG": json.dumps({f"conveyor:{k}": v if isinstance(v, str) else json.dumps(v)
                                        for k, v in stack_config("throwaway").items()})}
    proc = subprocess.run([sys.executable, "-c", CHECKLIST_RUN, str(tmp_path), str(ROOT / "infra" / "__main__.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert "conveyor:throwaway:Environment" in result["types"]
    assert not [t for t in result["types"] if t.startswith(("conveyor:local:", "conveyor:kubernetes:"))]
    parsed = EnvironmentOutputs.model_validate(result["outputs"])
    assert parsed.env == "scratch" and parsed.platform == "throwaway"
    assert parsed.tracking_uri == "http://127.0.0.1:6901"
    assert set(parsed.credentials) == set(PERSONAS)


def test_an_unregistered_platform_names_the_key_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        parse("dev", stack_config("throwaway"))
    assert str(err.value) == "conveyor:platform: Input should be 'local' or 'kubernetes', got 'throwaway'"


def test_a_registered_platform_is_accepted_by_the_config(throwaway):
    assert parse("dev", stack_config("throwaway")).platform == "throwaway"
    with pytest.raises(ConfigError, match="Input should be 'local', 'kubernetes' or 'throwaway', got 'nomad'"):
        parse("dev", stack_config("nomad"))


@pytest.mark.parametrize("name", sorted(platforms.PLATFORMS))
def test_every_registered_class_implements_the_contract_under_its_name(name):
    cls = platforms.platform_class(name)
    assert issubclass(cls, Environment) and cls.platform == name


def test_a_class_registered_under_another_name_is_refused(throwaway, monkeypatch):
    monkeypatch.setitem(platforms.PLATFORMS, "elsewhere", "throwaway_platform:ThrowawayEnvironment")
    with pytest.raises(TypeError, match="registered as 'elsewhere'"):
        platforms.platform_class("elsewhere")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    return proc.stdout.split()


def test_the_contract_and_the_registry_import_no_platform():
    modules = _imported_after("import infra.environment, infra.platforms, infra.config")
    assert not [m for m in modules if m.startswith(("infra.local", "infra.kubernetes", "pulumi_kubernetes"))]


@pytest.mark.parametrize(("platform", "others"), [
    ("local", ("infra.kubernetes", "pulumi_kubernetes")),
    ("kubernetes", ("infra.local",)),
])
def test_a_platform_is_loaded_only_when_a_stack_asks_for_it_and_loads_no_other(platform, others):
    modules = _imported_after(f"from infra.platforms import platform_class; platform_class({platform!r})")
    assert f"infra.{platform}.environment" in modules
    assert not [m for m in modules if m.startswith(others)]
