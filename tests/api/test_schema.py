"""The OpenAPI schema: valid, served with its UIs from the app, and honoured by every endpoint.

schemathesis generates requests from the schema (valid and invalid ones) and runs them in-process
through the project's WSGI application as a staff superuser; no response may be a 5xx, every
response must match the schema (status code, content type, body), and a request that breaks the
schema must be refused."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from aicache_project.wsgi import application

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/aicache/stats/",
    "/api/aicache/stats/timeseries/",
    "/api/aicache/slow-operations/",
    "/api/aicache/invalidations/",
    "/api/aicache/invalidations/stats/",
    "/api/aicache/invalidations/recommendations/",
    "/api/aicache/memory/",
    "/api/aicache/export/",
    "/api/aicache/health/",
    "/api/aicache/invalidate/",
    "/api/aicache/reset/",
    "/api/aicache/process/",
}


def test_schema_lists_every_endpoint_and_validates(staff):
    from drf_spectacular.validation import validate_schema

    response = staff.get("/api/aicache/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert set(schema["paths"]) == PATHS
    stats = schema["paths"]["/api/aicache/stats/"]["get"]
    assert {p["name"] for p in stats["parameters"]} == {"last", "since", "until", "operation", "tier"}
    assert set(stats["responses"]) == {"200", "400", "401", "403", "503"}


@pytest.mark.parametrize("page", ["/api/aicache/docs/", "/api/aicache/redoc/"])
def test_ui_pages_use_the_sidecar_not_a_cdn(staff, page):
    html = staff.get(page).content.decode()
    assert "drf_spectacular_sidecar" in html and "cdn.jsdelivr" not in html


@pytest.fixture
def superuser_token(django_user_model, settings, ai_cache):
    from rest_framework.authtoken.models import Token

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"aicache_invalidate": "100000/minute", "aicache_process": "100000/minute"},
    }
    user = django_user_model.objects.create_superuser("fuzz", "fuzz@example.com", "pw-123456")
    return Token.objects.create(user=user).key


def _generated() -> dict:
    """The schema the staff-only ``schema/`` view serves, generated at collection (no database,
    no login: the view's output without its request)."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_generated())
schema.app = application  # requests go to the project's WSGI application, in-process


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_responses_match_the_schema(case, keep_test_connection, superuser_token):
    response = case.call(headers={"Authorization": f"Token {superuser_token}"})
    assert response.status_code < 500 or (
        case.path == "/api/aicache/health/" and response.status_code == 503
    ), f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    case.validate_response(
        response,
        checks=[
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
