// Public surface of @tiergate/proxy (filled in by its implementation).
