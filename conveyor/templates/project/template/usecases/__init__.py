"""The project's use cases: one package per model, declared by its `usecase.yml`."""
