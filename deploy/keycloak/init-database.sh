#!/bin/bash
# Keycloak's own database and role in the stack's PostgreSQL (mounted into /docker-entrypoint-initdb.d by
# docker-compose.yml, so it runs once, when the data directory is first initialised; an existing volume
# needs the same three statements run by hand). Keycloak never sees the services' databases.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v password="$KEYCLOAK_DB_PASSWORD" <<'SQL'
CREATE ROLE keycloak LOGIN PASSWORD :'password';
CREATE DATABASE keycloak OWNER keycloak ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE keycloak FROM PUBLIC;
SQL
