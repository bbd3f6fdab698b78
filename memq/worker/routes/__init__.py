"""HTTP routes beyond the core API (``memq.worker.api``), one module per feature; each
module exposes ``ROUTES``. ``common`` holds what every route needs from a request."""
