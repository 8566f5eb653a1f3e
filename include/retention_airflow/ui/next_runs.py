"""When each DAG of the schedule runs next, from Airflow's metadata (the API server has it).

A scheduled run's day - the ``as_of`` it counts for - is its logical date on the policy's
clocks (``context.run_day``), so the forecast of "tonight" is made for that day. A paused DAG
runs nothing, whatever its next date says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from airflow.models.dag import DagModel
from sqlalchemy import select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class NextRun:
    """A DAG's next scheduled run as Airflow's scheduler has it."""

    dag_id: str
    known: bool  # False: Airflow has not parsed this DAG (yet)
    paused: bool = False
    logical_date: datetime | None = None  # None: no run scheduled

    def day(self, zone: object, today: date) -> date:
        """The day the run counts for, on the policy's clocks; today when none is scheduled."""
        return self.logical_date.astimezone(zone).date() if self.logical_date else today  # type: ignore[arg-type]


def next_runs(session: Session, dag_ids: list[str]) -> dict[str, NextRun]:
    """Each of ``dag_ids``' next run, one query."""
    rows = session.execute(
        select(DagModel.dag_id, DagModel.is_paused, DagModel.next_dagrun).where(DagModel.dag_id.in_(dag_ids))
    ).all()
    found = {r.dag_id: NextRun(r.dag_id, True, bool(r.is_paused), r.next_dagrun) for r in rows}
    return {dag_id: found.get(dag_id, NextRun(dag_id, False)) for dag_id in dag_ids}
