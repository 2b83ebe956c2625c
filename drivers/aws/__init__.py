"""AWS (EC2) as a cloud provider, on boto3: sync (provider.py) and instances (compute.py)."""
