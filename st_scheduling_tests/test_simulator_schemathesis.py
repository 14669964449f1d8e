"""A third-party, spec-driven tester (schemathesis) against the served simulator, with auth."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from st_scheduling_tests.conftest import serve, spec

schema = schemathesis.openapi.from_dict(spec())


@pytest.fixture(scope="module")
def authed():
    served = serve()
    creds = served.credentials()
    token = httpx.post(
        f"{served.base_url}/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    ).json()["access_token"]
    yield f"{served.base_url}/schedulingpro/v2", {"Authorization": f"Bearer {token}", "ST-App-Key": creds.app_key}
    served.close()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_response_outside_the_spec(case, authed):
    base_url, headers = authed
    case.call_and_validate(base_url=base_url, headers=headers)
