"""fer_edge.benchmarks: FPS-versus-accuracy measurements (``fer-edge benchmark``), torch only for baselines."""
