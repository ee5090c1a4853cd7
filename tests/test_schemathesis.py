"""schemathesis over the whole OpenAPI document, authenticated, with a fixed example budget.

No request may end in a 5xx, and every response must match the document. The budget is fixed so
that CI time is bounded; raise SCHEMATHESIS_MAX_EXAMPLES locally for a longer hunt.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .conftest import bearer

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))


@pytest.fixture
def api_schema(app, world):
    def wsgi(environ, start_response):
        # Each request in its own app context (and database session), as in production.
        with app.app_context():
            return app(environ, start_response)

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi)
    authorization = bearer(world.therapist)["Authorization"]

    # Registered as the schema's auth, so schemathesis knows the header is supplied and still
    # sends requests without it when it tests that authentication is enforced.
    @schema.auth(refresh_interval=None)
    class TherapistToken:
        def get(self, case, context):
            return authorization

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": data}

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case):
    # A schema-valid body may still be refused with 422: NPI check digits, MBI letters, real phone
    # numbers and the 90-day certification span are rules JSON Schema cannot state.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
