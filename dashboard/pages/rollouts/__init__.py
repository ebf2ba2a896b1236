"""The rollout inspector page: layout and callbacks (page.py), cards and filters."""
