"""Reading many files in worker processes or on Ray, a door onto read: imports read only."""
