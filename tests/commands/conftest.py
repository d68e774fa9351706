from tests.api.conftest import history_on_for_health, wired  # noqa: F401  (shared fixtures)
