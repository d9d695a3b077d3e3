// Public surface of @tiergate/demo-app (filled in by its implementation).
