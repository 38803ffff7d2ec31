"""Partners can authorize in /docs with their client id and secret (OAuth2 client credentials)."""
from __future__ import annotations

from services.benefits.app import create_app


def test_openapi_offers_the_client_credentials_flow_on_partner_endpoints():
    schema = create_app().openapi()
    scheme = schema["components"]["securitySchemes"]["PartnerClientCredentials"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert set(scheme["flows"]["clientCredentials"]["scopes"]) == {"credit", "settlement"}
    assert {"PartnerClientCredentials": ["credit"]} in schema["paths"]["/v1/credit/eligibility"]["post"]["security"]
    assert {"PartnerClientCredentials": ["settlement"]} in schema["paths"]["/v1/settlements/one-stop"]["post"]["security"]
    assert "/oauth/token" in schema["paths"]
