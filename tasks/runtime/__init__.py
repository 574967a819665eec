"""Running a model: loading checkpoints safely, choosing the device, batched generation."""
