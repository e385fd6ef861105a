"""The GitHub Actions workflows users copy: valid (actionlint) and shaped as promised.

actionlint is built from Go modules by scripts/build-actionlint.sh into the shared
tools cache. A missing `go` skips the lint with the reason; any other build
failure fails the test, since an unlinted workflow would pass silently.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
BUILD_SCRIPT = ROOT / "scripts" / "build-actionlint.sh"

# Third-party code a user's repo runs: only GitHub's own, pinned to a major version.
ALLOWED_ACTIONS = {"actions/checkout", "actions/setup-python", "actions/setup-go", "actions/cache"}
# What a `run:` step may call: the project's own commands and bash builtins.
ALLOWED_PROGRAMS = {"make", "conveyor", "pulumi", "python", "pip"}
BASH_BUILTINS = {
    "echo", "printf", "test", "[", "[[", "]]", "cd", "export", "set", "unset", "source", ".",
    "exit", "true", "false", "read", "shift", "local", "return", ":", "if", "then", "else",
    "elif", "fi", "for", "do", "done", "while", "until", "case", "esac", "!", "{", "}",
}
KEYWORDS_BEFORE_COMMAND = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "(", "time"}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
REDIRECTS = {">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", "2>", "2>>"}


# ---------------------------------------------------------------- loading


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def action_files() -> list[Path]:
    return sorted(ACTIONS.glob("*/action.yml"))


def all_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, step) for every step of every workflow job and local composite action."""
    for path in workflow_files():
        for job_id, job in load(path).get("jobs", {}).items():
            for i, step in enumerate(job.get("steps", [])):
                yield f"{path.name}:{job_id}[{i}]", step
    for path in action_files():
        for i, step in enumerate(load(path)["runs"].get("steps", [])):
            yield f"{path.parent.name}/action.yml[{i}]", step


def runs(doc: dict[str, Any], job: str) -> list[str]:
    return [s["run"] for s in doc["jobs"][job].get("steps", []) if "run" in s]


# ---------------------------------------------------------------- shell parsing


def logical_lines(script: str) -> Iterator[str]:
    """Lines of a shell script with continuations joined and multi-line quotes kept whole."""
    buf = ""
    for line in script.replace("\\\n", " ").splitlines():
        buf = f"{buf}\n{line}" if buf else line
        try:
            shlex.split(buf, comments=True)
        except ValueError:  # an open quote: the string goes on on the next line
            continue
        yield buf
        buf = ""
    if buf:
        yield buf


def commands_of(script: str) -> list[str]:
    """The program name of every simple command in a bash script (a small, strict parser)."""
    found: list[str] = []
    for line in logical_lines(script):
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        at_start, skip_next, in_for = True, False, False
        for tok in lex:
            if skip_next:  # the file name after a redirection
                skip_next = False
                continue
            if tok in REDIRECTS or re.fullmatch(r"\d?>>?|\d?>&\d?|<", tok):
                skip_next = True
                continue
            if tok in SEPARATORS:
                at_start, in_for = True, False
                continue
            if not at_start or in_for:
                continue
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):  # VAR=value prefix
                continue
            found.append(tok)
            if tok in ("for", "case"):
                in_for = True
            at_start = tok in KEYWORDS_BEFORE_COMMAND
    return found


def test_command_parser_sees_every_command() -> None:
    """The parser behind the allow-list catches commands hidden behind operators."""
    script = (
        'if [ -z "$X" ]; then\n  echo "::error::x; curl y" >> "$F"\n  exit 1\nfi\n'
        "FOO=1 make setup && curl -s x | sh\n"
        "pulumi up \\\n  --yes; wget z\n"
        "echo 'multi\nline' ; git push\n"
    )
    assert commands_of(script) == [
        "if", "[", "then", "echo", "exit", "fi", "make", "curl", "sh", "pulumi", "wget", "echo", "git",
    ]


# ---------------------------------------------------------------- actionlint


@pytest.fixture(scope="session")
def actionlint() -> str:
    if shutil.which("go") is None:
        probe = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True)
        if probe.returncode != 0:  # not already cached either
            pytest.skip("`go` is not on PATH: cannot build actionlint (install Go >= 1.25)")
        return probe.stdout.strip().splitlines()[-1]
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"could not build actionlint (scripts/build-actionlint.sh):\n{proc.stderr[-3000:]}")
    binary = proc.stdout.strip().splitlines()[-1]
    assert Path(binary).is_file(), binary
    return binary


def lint(actionlint: str, cwd: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck/pyflakes integrations off: results must not depend on what else is installed.
    return subprocess.run(
        [actionlint, "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_actionlint_passes_on_every_workflow(actionlint: str) -> None:
    files = workflow_files()
    assert len(files) >= 3, files
    proc = lint(actionlint, ROOT, *files)
    assert proc.returncode == 0, f"actionlint found problems:\n{proc.stdout}{proc.stderr}"


def test_actionlint_rejects_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """Guards the lint itself: a typo'd context and a missing input must be reported."""
    wf = tmp_path / ".github" / "workflows" / "broken.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text(
        "on: push\n"
        "jobs:\n"
        "  deploy:\n"
        "    runs-on: ubuntu-latest\n"
        "    concurrency:\n"
        "      group: deploy-${{ github.refname }}\n"
        "    steps:\n"
        "      - uses: actions/cache@v5\n"
        "        with:\n"
        "          path: ~/.cache\n"
    )
    proc = lint(actionlint, tmp_path, wf)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refname" in proc.stdout
    assert '"key"' in proc.stdout


def test_build_script_is_cached(actionlint: str) -> None:
    """A second build is a cache hit that returns the same binary without rebuilding."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == actionlint
    assert "building" not in proc.stderr


# ---------------------------------------------------------------- what users rely on


def test_pull_requests_run_unit_tests_validate_both_targets_and_integrate_on_staging() -> None:
    pr = load(WORKFLOWS / "pr.yml")
    assert "pull_request" in pr["on"]
    assert "main" in pr["on"]["pull_request"]["branches"]

    assert "make test-unit" in runs(pr, "unit-tests")
    validated = " ".join(runs(pr, "validate"))
    assert "conveyor bundle validate -t staging" in validated
    assert "conveyor bundle validate -t prod" in validated

    integ = pr["jobs"]["integration-staging"]
    assert set(integ["needs"]) == {"unit-tests", "validate"}
    steps = runs(pr, "integration-staging")
    order = ["conveyor env up staging", "conveyor bundle deploy -t staging", "conveyor bundle run model_training_job -t staging"]
    positions = [next(i for i, r in enumerate(steps) if cmd in r) for cmd in order]
    assert positions == sorted(positions), "integration steps out of order"
    train = next(r for r in steps if "bundle run model_training_job" in r)
    assert "--params" in train and "data_subset=" in train
    assert integ["env"]["DATA_SUBSET"] not in ("", "1", "1.0")  # a real subset
    teardown = next(s for s in integ["steps"] if "run" in s and "conveyor env down staging" in s["run"])
    assert teardown["if"] == "always()"


@pytest.mark.parametrize(
    ("file", "target", "branch"), [("deploy-staging.yml", "staging", "main"), ("deploy-prod.yml", "prod", "release")]
)
def test_deploys_trigger_on_their_branch_and_never_overlap(file: str, target: str, branch: str) -> None:
    wf = load(WORKFLOWS / file)
    assert wf["on"]["push"]["branches"] == [branch]
    assert wf["concurrency"]["group"] == f"conveyor-deploy-{target}"
    assert wf["concurrency"]["cancel-in-progress"] is False
    (job,) = wf["jobs"].values()
    assert job["uses"] == "./.github/workflows/deploy-env.yml"
    assert job["with"]["target"] == target
    assert job["if"] == f"github.ref == 'refs/heads/{branch}'"
    assert job["secrets"] == "inherit"


def test_concurrency_groups_are_one_per_target() -> None:
    groups = {load(WORKFLOWS / f)["concurrency"]["group"] for f in ("deploy-staging.yml", "deploy-prod.yml")}
    assert len(groups) == 2
    # The reusable job must not take the caller's group: it would wait on itself forever.
    reusable = load(WORKFLOWS / "deploy-env.yml")
    assert "concurrency" not in reusable and all("concurrency" not in j for j in reusable["jobs"].values())


def test_prod_is_deployed_only_from_release() -> None:
    for path in workflow_files():
        wf = load(path)
        text = path.read_text()
        for job in wf.get("jobs", {}).values():
            if job.get("with", {}).get("target") == "prod":
                assert path.name == "deploy-prod.yml"
                assert job["if"] == "github.ref == 'refs/heads/release'"
        if path.name not in ("deploy-prod.yml", "deploy-env.yml"):
            assert not re.search(r"-t\s+prod\b(?!.*validate)", text.replace("bundle validate -t prod", "")), path.name
            assert "--stack prod" not in text and "-s prod" not in text, path.name


def test_reusable_deploy_applies_infra_only_when_changed_then_deploys_the_bundle() -> None:
    wf = load(WORKFLOWS / "deploy-env.yml")
    assert "workflow_call" in wf["on"]
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "${{ inputs.target }}"
    steps = job["steps"]
    up = next(i for i, s in enumerate(steps) if "pulumi up" in s.get("run", ""))
    deploy = next(i for i, s in enumerate(steps) if "conveyor bundle deploy" in s.get("run", ""))
    check = next(i for i, s in enumerate(steps) if s.get("id") == "infra")
    assert check < up < deploy
    assert steps[up]["if"] == "steps.infra.outputs.changed == 'true'"
    # Missing secrets fail before minutes of setup; the env's code and .venv survive checkouts.
    checkout = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/checkout@"))
    assert steps[0]["name"] == "Check configuration" and checkout > 0
    assert steps[checkout]["with"]["clean"] is False
    assert "if" not in steps[deploy]
    assert '--stack "$TARGET"' in steps[up]["run"]
    # Processes pulumi starts must survive the job on a self-hosted runner.
    assert steps[up]["env"]["RUNNER_TRACKING_ID"] == ""


SECRETY = re.compile(r"PASS|TOKEN|SECRET|CREDENTIAL|PRIVATE|API_KEY|BACKEND_URL", re.I)


def env_maps() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in workflow_files():
        wf = load(path)
        yield path.name, wf.get("env", {})
        for job_id, job in wf.get("jobs", {}).items():
            yield f"{path.name}:{job_id}", job.get("env", {})
    for where, step in all_steps():
        yield where, step.get("env", {})


def test_no_secret_values_are_inlined() -> None:
    seen = 0
    for where, env in env_maps():
        for key, value in env.items():
            if SECRETY.search(key):
                seen += 1
                assert re.fullmatch(r"\$\{\{\s*secrets\.[A-Z0-9_]+\s*\}\}", str(value)), f"{where}: {key} must come from secrets"
    assert seen >= 2  # the passphrase and the state backend URL
    for path in [*workflow_files(), *action_files()]:
        text = path.read_text()
        assert "--show-secrets" not in text, f"{path.name}: would print credentials into the CI log"
        text = re.sub(r"\$\{\{\s*secrets\.\w+\s*\}\}", "", text)
        literal = re.search(r"(?i)(passphrase|password|token)[\w-]*[ \t]*[:=][ \t]*['\"]?[A-Za-z0-9+/_-]{8,}", text)
        assert literal is None, f"{path.name}: literal credential {literal and literal.group(0)!r}"


def test_run_steps_use_only_the_projects_own_commands() -> None:
    checked = 0
    for where, step in all_steps():
        if "run" not in step:
            continue
        script = step["run"]
        checked += 1
        assert "${{" not in script, f"{where}: pass expressions via env, not into the script (injection)"
        assert "$(" not in script and "`" not in script, f"{where}: no command substitution"
        for program in commands_of(script):
            assert program in ALLOWED_PROGRAMS | BASH_BUILTINS, f"{where}: `{program}` is not a project command"
    assert checked >= 10


def test_only_well_known_actions_pinned_to_a_major_version() -> None:
    for where, step in all_steps():
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        name, _, ref = uses.partition("@")
        assert name in ALLOWED_ACTIONS, f"{where}: {uses}"
        assert re.fullmatch(r"v\d+", ref), f"{where}: pin {name} to a major version, got @{ref}"
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            uses = job.get("uses")
            assert uses is None or uses.startswith("./.github/workflows/"), f"{path.name}:{job_id}"


def test_every_job_is_bounded_and_read_only() -> None:
    for path in workflow_files():
        wf = load(path)
        assert wf["permissions"] == {"contents": "read"}, path.name
        for job_id, job in wf["jobs"].items():
            if "uses" not in job:
                assert isinstance(job.get("timeout-minutes"), int), f"{path.name}:{job_id} needs timeout-minutes"


def test_setup_caches_the_toolchain_and_pip_and_puts_the_venv_on_path() -> None:
    action = load(ACTIONS / "setup-conveyor" / "action.yml")
    steps = action["runs"]["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/conveyor/tools"
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache"] == "pip"
    assert any(s.get("run") == "make setup" for s in steps)
    assert any("GITHUB_PATH" in s.get("run", "") and ".venv/bin" in s["run"] for s in steps)
    # Every job that runs project commands sets up first.
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            uses = [s.get("uses", "") for s in job.get("steps", [])]
            if any("run" in s for s in job.get("steps", [])):
                assert "./.github/actions/setup-conveyor" in uses, f"{path.name}:{job_id}"


def test_committed_stack_configs_carry_no_encryption_salt() -> None:
    """`encryptionsalt` ties a Pulumi.<env>.yaml to one passphrase: committed, it makes every
    fresh clone and CI runner (each with its own PULUMI_CONFIG_PASSPHRASE) fail to create the
    stack with "incorrect passphrase". Pulumi keeps the salt in the stack state anyway."""
    tracked = subprocess.run(["git", "ls-files", "Pulumi.*.yaml"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked, "no Pulumi.<env>.yaml committed"
    for name in tracked:
        # What git stores (after any clean filter), not the working copy Pulumi may have salted.
        blob = subprocess.run(["git", "show", f":{name}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        config = yaml.safe_load(blob) or {}
        assert "encryptionsalt" not in config, f"{name}: remove `encryptionsalt` before committing"
