"""Training: the thin Lightning modules and the runs that fit them."""
