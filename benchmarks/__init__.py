"""Benchmarks of the real pipeline on the real broker (``fraudstream bench``).

Every figure is measured on the machine the command runs on, in one run, and reported with
the command that reproduces it; throughput is also given as a ratio to ceilings measured in the
same run, because absolute rates on a shared 2-core machine move with its load.
"""
