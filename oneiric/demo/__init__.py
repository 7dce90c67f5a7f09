"""The bundled example project (`--demo`): tasks and adapters the reference manifests point at."""
