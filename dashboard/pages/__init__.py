"""Dashboard pages: one module per page, its callbacks beside its layout."""
