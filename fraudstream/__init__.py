"""fraudstream: real-time card-fraud detection on Kafka, Faust and River."""

__version__ = "0.1.0"
