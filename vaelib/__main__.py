"""`python -m vaelib [--jobs N] [--list]`: train the uncached book models."""

from .book import main

main()
