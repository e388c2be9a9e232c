"""Display formats for the admin (``FORMAT_MODULE_PATH``): timestamps with seconds and zone."""
