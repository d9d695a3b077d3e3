// Public surface of @tiergate/telemetry (filled in by its implementation).
