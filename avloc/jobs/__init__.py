"""Jobs: the long-running things a command starts (pretraining of the visual trunk, ...)."""
