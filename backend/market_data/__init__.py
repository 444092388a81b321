"""The cache itself: read-through service, coverage, calendar, inventory, stats, jobs."""
