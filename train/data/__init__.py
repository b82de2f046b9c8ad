"""Data for the demo and the tests: real surfaces, generated defects, a line clip."""
