"""The HTTP frame every domain shares: problem+json, request guard, health, pages, dependencies."""
