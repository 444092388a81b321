"""Strategy workflows: the executor, lineage and the strategies."""
