"""An example third-party RHAPSODY plugin: an inline execution backend and an echo inference one."""
