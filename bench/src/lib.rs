//! Benchmarks and load tools for Amico.
