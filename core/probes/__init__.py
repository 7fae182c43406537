"""Probe sets: the schema, the MiJaBench-layout loader, the builder and the selection a run uses."""
from core.probes.schema import PROBE_FIELDS, Probe, probe_id_for

__all__ = ["PROBE_FIELDS", "Probe", "probe_id_for"]
