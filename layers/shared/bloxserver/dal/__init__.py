"""Data access: the only package that touches boto3. Logic calls these functions with plain values."""
