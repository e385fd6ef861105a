"""Use cases as plug-ins: `usecases/<name>/usecase.yml` declares what is specific to one model.

`contract` (what the YAML may say), `load` (find, read, check; `load_use_case`), `usecase` (the
loaded `UseCase` the generic tasks work with), `metrics` (by task type), `expectations` (the GX
suites derived from the declaration). usecases/README.md is the reference of the YAML.
"""

from ml.usecase.load import UseCaseInvalid, available, check, default_name, load_use_case
from ml.usecase.usecase import UseCase, UseCaseError

__all__ = ["UseCase", "UseCaseError", "UseCaseInvalid", "available", "check", "default_name", "load_use_case"]
