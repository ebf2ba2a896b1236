"""The repository layer: every SQL statement of the server lives here.

ORM objects never leave it; callers get pydantic models or plain values. Nothing is imported
here, so a module can use one part (the errors, say) without loading the rest.
"""
