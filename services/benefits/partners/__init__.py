"""Partner identity: OAuth2 client credentials for banks and insurers, scopes, rate limits, access log."""
