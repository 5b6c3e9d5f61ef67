"""Where capability registries come from: the Models API fetchers, snapshots on disk and
policy files."""
