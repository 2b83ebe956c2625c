"""Bare metal: machines managed through their BMC (IPMI on pyghmi, Redfish on httpx)."""
