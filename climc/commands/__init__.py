"""climc command modules, one per resource family; registered in climc/command_table.py."""
