"""Statistics over records: paired gaps and their intervals (``intervals``), seeds for a target width and
sequential stopping (``sequential``), and the one wording of a verdict (``verdicts``)."""
