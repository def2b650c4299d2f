# An empty configuration is valid: every default, no routes.
