"""The PostgreSQL controller: act on the local instance and observe it, every step bounded in time."""

from pgwarden.fence.postmaster import postmaster_pid
from pgwarden.postgres.commands import PostgresError
from pgwarden.postgres.conninfo import StandbyUpstream
from pgwarden.postgres.controldata import ControlData, DataDirState, classify, parse_controldata
from pgwarden.postgres.controller import ParamChange, PostgresController, StopMode
from pgwarden.postgres.probe import probe
from pgwarden.postgres.settings import ManagedConf, render_conf, render_hba
from pgwarden.postgres.slots import SlotInfo, slot_name

__all__ = [
    "ControlData",
    "DataDirState",
    "ManagedConf",
    "ParamChange",
    "PostgresController",
    "PostgresError",
    "SlotInfo",
    "StandbyUpstream",
    "StopMode",
    "classify",
    "parse_controldata",
    "postmaster_pid",
    "probe",
    "render_conf",
    "render_hba",
    "slot_name",
]
