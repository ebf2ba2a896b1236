"""The run page (/runs/<run_id>): page.py (layout and callbacks), loading.py (full loads and
live patches of its figures), markers.py (alert markers on its charts)."""
