"""Mail providers. Nothing here imports Django: providers take plain configuration and an
OutboundMessage, and answer with a SendResult or a classified ProviderError."""
