"""Environment variables a runtime sets for the scoring server beyond its options (`__main__.ENV_OPTIONS`): a
module of names only, so a runtime reads them without importing the server (FastAPI alone takes ~0.4 s)."""

BUDGET_ENV = "MODELDECK_BODY_MEMORY_MB"  # sets a worker's budget instead of the memory limit's share
MEMORY_ENV = "MODELDECK_MEMORY_MB"  # a memory limit not enforced by a cgroup (the local runtime's deploy config)
