"""Region: resources, IPAM, quotas and the tasks that change them."""
