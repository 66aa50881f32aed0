"""The `twinledger` command line."""
