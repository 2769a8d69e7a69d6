"""Helpers shared by the integration tests: running the proxy as a real process."""
