"""Training (the train stage): the SFT trainer, checkpoints that outlive a killed run, multi-process launch, the model card."""
