"""verl's plugin entry point: verl imports this module when it is itself imported, in every
process, so ``fadewatch`` is a known logger wherever fadewatch is installed (see verl.py)."""

from fadewatch.integrations.verl import setup

__all__: list[str] = []

setup()
