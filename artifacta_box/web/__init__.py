"""Pages for people: Jinja2 templates, static files, and safe previews of stored artifacts.

No Sanic here (the layer rule of tests/unit/test_architecture.py): `http/console.py` turns
requests into calls on `services/` and renders what this package returns. The preview
renderers and the `preview.html` macros are shared by every page that shows an artifact.
"""
