"""Training: one loop over an engine that trains K >= 1 networks.

* `schedule`: iteration counts, the iterations the loop returns to Python at
  and which evaluations are due there;
* `record`: metrics (metrics.json, TensorBoard), done.json and divergence;
* `engine`: the interface the loop drives (`Engine`);
* `single`: the engine of one network (`CompiledSteps`, K = 1);
* `stacked`: the engine of K networks of one architecture stacked on a
  leading axis (a population);
* `xla`, `sparse`: what decides how the single engine compiles;
* `cache`: compiled engines kept per data set and reused by later runs;
* `loop`: preparing the run directories, the one training loop, and writing
  the results (`train_members`);
* `evaluation`: `evaluate(model, dataset, split)` without an optimizer.

`trainer.train` (K = 1) and `trainer.train_population` (K members) are the
entry points; both are `loop.train_members` over their engine.
"""
