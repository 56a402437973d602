"""The REST API's documents, rendered once for the API, the CLI and the web view (render.py, status.py),
in the typed shapes the OpenAPI schemas are generated from (shapes.py)."""
