"""What a task is: its spec, prompt, schema and answer checks. Pure: no I/O."""
