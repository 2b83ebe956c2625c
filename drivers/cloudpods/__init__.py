"""Another Cloudpods-compatible controller (a second cloudpods-one, or real Cloudpods) as a cloud."""
