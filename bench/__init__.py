"""Benchmarks: speed and memory figures live here, never in timed unit tests."""
