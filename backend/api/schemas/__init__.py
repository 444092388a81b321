"""API shapes, one module per resource: what each route accepts and returns."""
