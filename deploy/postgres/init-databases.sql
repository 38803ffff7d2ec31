-- Runs once, when the PostgreSQL data directory is first initialised
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
-- Each service owns its own database; no service reads another's tables.
-- The owner is POSTGRES_USER (jingzhun); `jingzhun migrate` creates the tables.
CREATE DATABASE jz_registry OWNER jingzhun ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE jz_benefits OWNER jingzhun ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE jz_audit    OWNER jingzhun ENCODING 'UTF8' TEMPLATE template0;

-- Nobody but the owner connects to a service database by default.
REVOKE ALL ON DATABASE jz_registry FROM PUBLIC;
REVOKE ALL ON DATABASE jz_benefits FROM PUBLIC;
REVOKE ALL ON DATABASE jz_audit    FROM PUBLIC;
