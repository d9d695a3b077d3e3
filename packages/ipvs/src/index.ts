// Public surface of @tiergate/ipvs (filled in by its implementation).
