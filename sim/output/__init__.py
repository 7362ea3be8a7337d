"""One run's files (atomic, with provenance), console lines and timeline trace."""
