"""Long-memory benchmarks of the uRNN paper (Arjovsky, Shah & Bengio 2016): copying and adding.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
