"""The embedded local stack: moto on loopback, Lambdas in-process, the same definitions."""
