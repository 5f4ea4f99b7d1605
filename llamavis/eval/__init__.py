"""``llamavis eval``: how good a route's answers are, measured against labels.

The room's parts, bottom up: ``labels`` reads a CSV/JSONL labels file and pairs its rows
with the images; ``metrics`` scores one task's answers against the gold (pure);
``report`` adds each route's counts, latency, tokens and cost and finds where routes
disagree; ``run`` asks every route through the one core (``llamavis.run.session``);
``smoke`` draws the built-in labelled set; ``html`` writes the page to look at. Nothing
here imports typer or rich: the command is ``llamavis.cli.eval``.
"""
