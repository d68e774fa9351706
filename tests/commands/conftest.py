from tests.api.conftest import wired  # noqa: F401  (caches["ai"] and the broker on a real Redis)
