"""What the command line writes: results, live answers, terminal helpers."""
