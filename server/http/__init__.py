"""The HTTP edge of the server: what wraps every request before and after the routes.

    body_limit.py        request size limits and gzip decoding (413 past the limits)
    security_headers.py  security headers on every answer
    rate_limit.py        the per-token request rate (429 with Retry-After)
    metrics.py           Prometheus counters and the /metrics middleware
    errors.py            exceptions translated to HTTP answers, in one place
    openapi.py           the error answers documented in the OpenAPI
"""
