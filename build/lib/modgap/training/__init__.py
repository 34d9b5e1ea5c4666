"""Training: encoders, loss terms, a prepared split's model inputs, learning-rate schedules, the trainer
(budget ladders, checkpoints, resume) and the process settings of a training job."""
