// Public surface of @tiergate/director (filled in by its implementation).
