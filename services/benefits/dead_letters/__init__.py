"""Dead letters of the benefits consumer: list, show, redrive (admin); logic in shared/dead_letters.py."""
