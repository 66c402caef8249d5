"""Open feeds: GTFS-JP with GTFS-Flex (static), GTFS-Realtime, and the TOMP booking use cases."""
