"""`dermsev train`: settings, the training loop, losses and the model card."""
