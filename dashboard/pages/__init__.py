"""Dashboard pages: one module (or package) per page, its callbacks beside its layout.

A page package holds the page module (the one that registers its path with Dash) and the
helpers only that page uses; Dash imports only the modules that register a page.
"""
