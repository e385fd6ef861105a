"""The `local` platform (`conveyor:platform: local`): `infra.local.environment.LocalEnvironment`."""
