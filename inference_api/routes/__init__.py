"""One module per resource; `app.create_app` mounts their routers under /v1 (health ones at the root)."""
