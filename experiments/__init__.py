"""Family-agnostic experiments: typed configuration, registries, one run, the lottery
trial and the controls, built from a configuration. No command line here: the
runners in ``lottery_ticket.cli`` and each family's entry points call these."""
