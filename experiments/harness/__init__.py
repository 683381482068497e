"""What every experiment shares: the config template, the driver, reporting, runtime."""
