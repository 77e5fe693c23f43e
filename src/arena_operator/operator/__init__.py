"""kopf handlers, one module per kind. Thin: read the object, call a domain module, patch status."""
