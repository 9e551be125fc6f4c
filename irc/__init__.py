"""The `irc` command line (irc.cli)."""
