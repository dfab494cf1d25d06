"""Studies: self-contained experiments that check a claim with numbers. Not part of the installed
gazeneg package (pyproject ships only gazeneg*); run them from the repository root."""
