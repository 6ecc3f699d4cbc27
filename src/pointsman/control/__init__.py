"""The process around the traffic: runtime, signals, admin, metrics and logs."""
