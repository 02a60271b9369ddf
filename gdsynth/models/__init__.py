"""Networks as plain ``nn.Module``s, losses, and the model folder format (safetensors + JSON card)."""
