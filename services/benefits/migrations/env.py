from services.benefits.tables import metadata
from shared.migrations_env import run

run(metadata)
