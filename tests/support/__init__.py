"""Test helpers shared by the test modules: one way to run the command, one loopback fake.

- ``support.cli``: ``llamavis`` runs the installed command as a subprocess (one default
  timeout); ``invoke`` runs the same command in this process with captured streams, for
  tests where a subprocess adds nothing but start-up time.
"""
