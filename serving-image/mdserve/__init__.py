"""mdserve: a fast model server for scikit-learn and TensorFlow models (V2 and TF-Serving V1 REST)."""

__version__ = "0.1.0"
