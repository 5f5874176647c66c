"""Many runs at once: grids and executors (:mod:`cognet.experiments.sweep`), the seed
papers' claims as experiments (:mod:`cognet.experiments.claims`) and the full results
table (:mod:`cognet.experiments.reproduce`)."""
