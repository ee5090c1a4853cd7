"""Video visits: rooms, signaling, ICE configuration and the aiortc media worker."""
