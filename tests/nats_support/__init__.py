"""Support for the NATS tests: a worker program to run as another OS process, and its actors."""
