"""The populate CLI: its arguments, the runner, the progress renderers, the backend API client."""
