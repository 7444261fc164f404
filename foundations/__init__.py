"""Abstractions and machinery for lottery ticket experiments."""
