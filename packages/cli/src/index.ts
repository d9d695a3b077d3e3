// Public surface of @tiergate/cli (filled in by its implementation).
