"""Glance: the image service (Cloudpods v1 and OpenStack Glance v2)."""
