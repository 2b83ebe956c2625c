"""VMware ESXi / vCenter over pyvmomi: inventory (property collectors) and VM lifecycle.

session.py (login, tasks, errors) · inventory.py (value objects, STATUS_MAP) · driver.py
(EsxiDriver, the HypervisorDriver of one ESXi host) · instances.py (EsxiInstances, its HostedDriver).
"""
