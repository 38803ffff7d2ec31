"""Dead letters of the audit consumer: list, show, redrive (admin); logic in shared/dead_letters.py."""
