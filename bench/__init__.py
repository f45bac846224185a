"""Side-by-side benchmark of the gateway against the fal simulator it fronts; see bench/README.md."""
