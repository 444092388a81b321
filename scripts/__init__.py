"""Command-line tools that build the backend's container and call its services."""
