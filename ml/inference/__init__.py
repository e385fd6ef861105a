"""Batch scoring with the env's champion."""
