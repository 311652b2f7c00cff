"""The visual defect inspector pipeline: DAG, compiler and command line."""
