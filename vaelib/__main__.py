"""`python -m vaelib [--jobs N] [--list]`: train the book's models that are not cached yet."""

from .book import main

main()
