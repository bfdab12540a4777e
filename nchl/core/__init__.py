"""The core: plasticity rules, controllers, genomes and their files, fixed point, the memory model.

It knows nothing of tasks, runs or the application: ``nchl_sim``, ``nchl_codegen`` and
:mod:`nchl.app` build on it, never the other way round."""
