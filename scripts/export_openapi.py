"""Print the API's OpenAPI schema as JSON, the source of the UI's generated API types."""

import json
import tempfile
from pathlib import Path

from backend.config.settings import Settings
from backend.main import create_app


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        # The schema depends on the routes only: a database that is never opened, no gateway.
        settings = Settings(
            _env_file=None,
            DATABASE_URL=f"sqlite:///{Path(scratch) / 'unused.db'}",
            DEBUG_MODE=True,
            LOG_LEVEL="WARNING",
        )
        app = create_app(settings)
        print(json.dumps(app.openapi(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
