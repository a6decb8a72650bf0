"""Core layer: configuration records, errors, budgets, run directory, data and models.

Nothing here imports from hardware/, compress/, search/, report/ or export/.
"""
