"""The alerts page (/alerts): page.py (layout and callbacks), views.py (tables and forms),
actions.py (the callbacks that change settings), alerting_api.py (rules, channels and
silences through the API)."""
