"""The study as a user runs it: one run (runs), notebook execution, executors, the whole
reproduction (pipeline) and the command line (cli). May import every other floor."""
