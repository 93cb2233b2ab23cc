"""The identity database and domain: settings, schema and migrations, stores, keys."""
