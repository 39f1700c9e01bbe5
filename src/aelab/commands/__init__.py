"""The subcommands beyond Lightning's: ``evaluate``, ``latent``, ``predict``, ``export`` (each a
``run_*`` function with a settings dataclass, wired into :class:`~aelab.commands.trainer.AelabTrainer`),
and what ``fit`` / ``test`` need around Lightning's loops (:mod:`~aelab.commands.fit`)."""
