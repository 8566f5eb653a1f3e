"""No personal data and no subject key in what Airflow logs when a statement fails (issue 15, item 10).

A real statement fails on a real PostgreSQL server - during an erasure, and during a nightly
run under a legal hold on a person - in the two ways production meets: a lock timeout while
another session holds the row, and a constraint the policy does not know (an application's
trigger logs each deleted contact in a table with a unique e-mail and phone, whose violation
the database reports as ``DETAIL:  Key (email, phone)=(...)``). Everything Airflow prints for the run - the task's
log lines and the traceback - is captured and searched for the e-mail, the phone number
(as stored and as typed) and the subject key: none may appear.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest
from dag_helpers import AS_OF, SUBJECT_SECRET, fail_erasures_on_an_application_trigger
from sqlalchemy import MetaData, Table, create_engine, select, text

from include.retention.database.identity import normalise


@pytest.fixture(scope="module")
def bag():
    """A DagBag of this module's own, whose tasks do not retry: ``dag.test`` would otherwise
    wait out the 10-minute retry delay of a failed task."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            task.retries = 0
    return dagbag


def _run(bag, dag_id: str, conf: dict):
    return bag.dags[dag_id].test(logical_date=datetime.now(UTC), run_conf=conf)


def _people(target, count: int) -> list[tuple[int, str, str]]:
    """The ``count`` prospects longest without contact (due for the nightly run): id, e-mail, phone."""
    t = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(t.c.prospect_id, t.c.email, t.c.phone)
                .where(t.c.last_inbound_contact_at.is_not(None), t.c.email.is_not(None), t.c.phone.is_not(None))
                .order_by(t.c.last_inbound_contact_at)
                .limit(count)
            )
        ]


class _RowLocked:
    """Another session holds the prospect's row, and statements give up waiting after 300 ms."""

    def __init__(self, target, prospect_id: int):
        self.target, self.prospect_id = target, prospect_id

    def __enter__(self):
        with self.target.engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {self.target.engine.url.database} SET lock_timeout = '300ms'")
        self.engine = create_engine(self.target.engine.url)
        self.conn = self.engine.connect()
        self.conn.execute(
            text("SELECT 1 FROM crm.prospects WHERE prospect_id = :p FOR UPDATE"), {"p": self.prospect_id}
        )
        return self

    def __exit__(self, *exc):
        self.conn.rollback()
        self.conn.close()
        self.engine.dispose()


def _forbidden(*people: tuple[int, str, str]) -> list[str]:
    """Each person's e-mail and phone as stored, as typed and in canonical form, the phone's
    bare digits, and the subject key."""
    values = [SUBJECT_SECRET]
    for _, email, phone in people:
        values += [email, email.lower(), phone, normalise("phone", phone), re.sub(r"\D", "", phone)]
    return values


def _assert_clean(output: str, forbidden: list[str], failure: str) -> None:
    assert failure in output, "the statement must really have failed, and the failure be logged"
    assert "Task failed with exception" in output
    leaked = [value for value in forbidden if value.lower() in output.lower()]
    assert not leaked, f"personal data or the key in Airflow's output: {leaked}"
    assert "The above exception was the direct cause" not in output
    assert "During handling of the above exception" not in output


ERASURE_FAILURES = {"lock timeout": "LockNotAvailable", "an application trigger's unique key": "UniqueViolation"}


@pytest.mark.parametrize("how", list(ERASURE_FAILURES))
def test_an_erasure_whose_statement_fails_logs_no_personal_data(bag, seeded_postgres, capfd, how):
    target = seeded_postgres
    (person,) = _people(target, 1)
    prospect_id, email, phone = person
    typed_phone = phone.replace(" ", ".")
    conf = {
        "request_type": "erasure",
        "reference": "DDP-2026-0042",
        "received": "2026-11-20",
        "identity": "verified",
        "email": email.upper(),
        "phone": typed_phone,
    }
    capfd.readouterr()
    if how == "lock timeout":
        with _RowLocked(target, prospect_id):
            run = _run(bag, "subject_request", conf)
    else:
        fail_erasures_on_an_application_trigger(target, prospect_id)
        run = _run(bag, "subject_request", conf)
    output = "".join(capfd.readouterr())

    assert run.state == "failed"
    _assert_clean(output, _forbidden(person) + [typed_phone], ERASURE_FAILURES[how])


@pytest.mark.parametrize("how", list(ERASURE_FAILURES))
def test_a_nightly_run_under_a_hold_on_a_person_whose_statement_fails_logs_no_personal_data(
    bag, seeded_postgres, capfd, how
):
    target = seeded_postgres
    held, failing = _people(target, 2)
    hold = {
        "action": "add",
        "reference": "RG-2026-0007",
        "scope": "subject",
        "email": held[1],
        "phone": held[2],
        "reason": "Contentieux en cours",
        "requested_by": "juridique",
    }
    assert _run(bag, "legal_hold", hold).state == "success"
    capfd.readouterr()
    conf = {"as_of": AS_OF.isoformat(), "mode": "execute"}
    if how == "lock timeout":
        with _RowLocked(target, failing[0]):
            run = _run(bag, "retention_prospection", conf)
    else:
        fail_erasures_on_an_application_trigger(target, failing[0])
        run = _run(bag, "retention_prospection", conf)
    output = "".join(capfd.readouterr())

    assert run.state == "failed"
    _assert_clean(output, _forbidden(held, failing), ERASURE_FAILURES[how])
