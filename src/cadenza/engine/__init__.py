"""The worker: claims due steps, renders, sends, records; throttling; mail transports."""
