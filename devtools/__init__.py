"""Development doubles and helpers for the local run, the tests and the benchmarks: the provider
simulator, a quiet launcher for the embedded SQS/S3 server, free ports. Never imported by the
service's own code (mail/, providers/, mailer_project/); the image carries it for the compose
stack's simulator."""
