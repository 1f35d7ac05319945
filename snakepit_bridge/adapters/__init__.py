"""Adapters shipped with the bridge (the showcase)."""
