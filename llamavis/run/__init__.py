"""The one way a task runs: options, config, runner, fallback, batch."""
