// Public surface of @tiergate/session (filled in by its implementation).
