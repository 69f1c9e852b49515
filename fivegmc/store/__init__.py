"""Storage for the 5GMC: one narrow protocol (:mod:`.protocol`), three backends."""
