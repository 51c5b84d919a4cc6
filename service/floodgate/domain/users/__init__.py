"""Users: models, data functions and routes."""
