"""Small helpers shared across avloc (files, seeding)."""
