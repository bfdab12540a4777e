"""The application: evolution, workers and clusters, campaigns and reports, stress, rendering,
shipping to the zoo, the main job and the command line. It builds on :mod:`nchl.core`, ``nchl_sim``
and ``nchl_codegen``."""
