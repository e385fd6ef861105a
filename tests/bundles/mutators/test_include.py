from bundles.mutators import include
from tests.lines import line_of

ROOT = """\
bundle: {name: shop}
include:
  - resources/*.yml
resources:
  jobs:
    main_job:
      tasks: {}
"""

JOBS = """\
resources:
  jobs:
    train_job:
      tasks:
        train:
          python: {module: ml.train}
"""


def test_included_resources_are_merged_with_their_own_lines(state_from, tmp_path):
    state = state_from(ROOT, {"resources/jobs.yml": JOBS})
    assert include.apply(state) == []
    assert set(state.doc.data["resources"]["jobs"]) == {"main_job", "train_job"}
    line = line_of(tmp_path / "resources/jobs.yml", "module:")
    loc = state.doc.loc(("resources", "jobs", "train_job", "tasks", "train", "python", "module"))
    assert str(loc) == f"resources/jobs.yml:{line}"


def test_a_resource_defined_twice_is_an_error_at_the_second_definition(state_from, tmp_path):
    state = state_from(ROOT, {"resources/jobs.yml": JOBS.replace("train_job", "main_job")})
    diags = include.apply(state)
    line = line_of(tmp_path / "resources/jobs.yml", "main_job")
    first = line_of(tmp_path / "bundle.yml", "main_job")
    assert [d.render() for d in diags] == [
        f"resources/jobs.yml:{line}: duplicate resource jobs.main_job (first defined at bundle.yml:{first})"
    ]
    assert state.doc.data["resources"]["jobs"]["main_job"] == {"tasks": {}}  # the first one is kept


def test_a_pattern_matching_nothing_is_a_warning(state_from):
    state = state_from(ROOT)
    diags = include.apply(state)
    assert [d.render() for d in diags] == ["bundle.yml:3: warning: include 'resources/*.yml' matches no file"]


def test_included_files_hold_only_resources(state_from):
    state = state_from(ROOT, {"resources/a.yml": "resource: {}\n", "resources/b.yml": "- 1\n"})
    diags = [d.render() for d in include.apply(state)]
    assert diags == [
        "resources/a.yml:1: unknown key 'resource' in an included file (only `resources` is allowed)"
        " (did you mean 'resources'?)",
        "resources/b.yml:1: an included file must be a mapping with `resources`",
    ]
