"""The IBKR transport: the only package that imports ib_insync."""
