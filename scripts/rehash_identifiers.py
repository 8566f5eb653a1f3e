"""Add canonical-form keyed hashes to the suppression list and subject legal holds.

Run once after upgrading to the canonical identifier form (``include/retention/rights/rehash.py``
says what it does and what it cannot do), as a role that may insert into the archive
schema's ``retention_suppression`` and ``retention_legal_hold_items``:

    RETENTION_SUBJECT_SECRET=... python scripts/rehash_identifiers.py postgresql://admin@host/crm

The policy is ``$RETENTION_POLICY`` or the project's default. Running it again adds nothing.
It prints counts only: the hashes and the identifiers behind them are personal data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.retention.database.identity import key_from_env  # noqa: E402
from include.retention.database.target import connect  # noqa: E402
from include.retention.errors import RetentionError  # noqa: E402
from include.retention.policy.load import load_policy  # noqa: E402
from include.retention.rights.rehash import add_canonical_hashes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target_url", help="SQLAlchemy URL of the target database (sqlite:///path or postgresql://...)")
    parser.add_argument("--policy", help="policy file (default: $RETENTION_POLICY or the project's policy)")
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
        target = connect(args.target_url, policy.archive_schema)
        try:
            added = add_canonical_hashes(target, policy, key_from_env())
        finally:
            target.dispose()
    except RetentionError as error:
        print(f"rehash_identifiers: {error}", file=sys.stderr)
        return 1
    print(
        f"canonical-form hashes added: {added.suppression_entries} suppression entries, "
        f"{added.hold_items} subject hold items"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
