"""Messages: models, data functions and routes."""
