"""A pass plugin for irc's tests: see ``passes.py`` (good passes) and ``clash.py`` (a bad one)."""
