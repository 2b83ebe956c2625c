"""The controller: config, db, api and the services."""
