"""Many-to-one sequence classification of images read pixel by pixel, row by row, or in a

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
