"""From audit to fix: a LoRA adapter trained with DPO on the audit's own preference pairs, then audited like any target.

`pairs.py` builds the pairs (a run's jailbreaks against refusals of the same probes, or a pairs file) and splits
the groups into trained and held out; `config.py` holds the settings; `train.py` trains, checkpoints and resumes;
`audit.py` runs base and adapter on the same probes, minus the training ones, and compares them by trained and
held-out groups. `python -m core mitigate` (core/cli/mitigate.py) drives them; pages/mitigation.py shows them.
"""
