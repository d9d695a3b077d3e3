// Public surface of @tiergate/config (filled in by its implementation).
