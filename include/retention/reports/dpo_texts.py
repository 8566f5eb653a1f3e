"""The DPO report's words, in French (default) and English: headings, sentences, column
headers. The dates and periods in words (``du 1er au 15 décembre 2026``) are in ``dates.words``.

Kept apart from the facts (dpo_report.py) and the HTML (dpo_render.py) so that a language is
added or a sentence reworded in one place.
"""

from __future__ import annotations

from typing import TypedDict

# The languages the report is written in; the first is the default.
LANGUAGES = ("fr", "en")

# The report's words in one language: headings, sentences (``{name}`` filled by ``format``),
# column headers, and names per segment, per hold status and per end action. The functional
# form because two keys, ``from`` and ``or``, are Python keywords.
ReportTexts = TypedDict(
    "ReportTexts",
    {
        "title": str,
        "intro": str,
        "schedule": str,
        "schedule_cols": tuple[str, ...],
        "volumes": str,
        "volumes_text": str,
        "chart_title": str,
        "volume_cols": tuple[str, ...],
        "segments": dict[str, str],
        "no_volume": str,
        "compliance": str,
        "compliance_cols": tuple[str, ...],
        "compliance_waiting": str,
        "ok": str,
        "ko": str,
        "holds": str,
        "holds_text": str,
        "holds_cols": tuple[str, ...],
        "no_holds": str,
        "hold_status": dict[str, str],
        "requests_cols": tuple[str, ...],
        "no_requests": str,
        "overdue": str,
        "campaigns": str,
        "campaigns_text": str,
        "campaigns_cols": tuple[str, ...],
        "no_reconsent": str,
        "no_campaign": str,
        "refusal_reasons": dict[str, str],
        "unattributed": str,
        "findings": str,
        "findings_cols": tuple[str, ...],
        "no_findings": str,
        "chain": str,
        "chain_ok": str,
        "chain_ko": str,
        "chain_rewritten": str,
        "chain_unverified": str,
        "chain_emptied": str,
        "chain_removed": str,
        "chain_no_reports": str,
        "chain_missing_certificates": str,
        "none": str,
        "no_archive": str,
        "delete": str,
        "anonymize": str,
        "until_end": str,
        "from": str,
        "or": str,
        "after": str,
        "footer": str,
    },
)

TEXT: dict[str, ReportTexts] = {
    "fr": {
        "title": "Rapport de conservation des données personnelles",
        "intro": "Période couverte : {period} (passages datés de cette période, d'après le journal d'audit) · "
        "politique version {version} · état compté le {today} dans la base, pas dans le journal.",
        "schedule": "1. Durées de conservation (telles que configurées)",
        "schedule_cols": (
            "Catégorie",
            "Finalité (charte)",
            "Base active : durée, à compter de",
            "Archive intermédiaire",
            "Finalité de l'archive / base légale",
            "Sort final",
        ),
        "volumes": "2. Enregistrements traités par mois",
        "volumes_text": "Enregistrements des tables principales de chaque catégorie (leurs lignes liées les "
        "suivent), traités par les passages exécutés (pas les simulations). Un passage compte "
        "chaque enregistrement une seule fois : archivé et conservé, ou archivé puis détruit "
        "(ou anonymisé) par ce même passage, ou détruit depuis l'archive où un passage antérieur "
        "l'avait mis, ou détruit directement dans la base active pour une catégorie sans archive. "
        "Un enregistrement archivé par un passage puis détruit par un passage ultérieur compte "
        "pour chacun des deux.",
        "chart_title": "{label} : enregistrements traités par les passages {during}, chacun compté une fois",
        "volume_cols": (
            "Catégorie",
            "Table",
            "Mois",
            "Archivés",
            "dont détruits ou anonymisés dans le même passage",
            "Détruits ou anonymisés depuis l'archive (archivés auparavant)",
            "Détruits directement dans la base active (sans archive)",
            "Enregistrements traités (chacun une fois)",
        ),
        "segments": {
            "archived_kept": "archivés et conservés",
            "deleted_same_run": "archivés puis détruits dans le même passage",
            "anonymized_same_run": "archivés puis anonymisés dans le même passage",
            "deleted_from_archive": "détruits depuis l'archive (archivés lors d'un passage antérieur)",
            "anonymized_from_archive": "anonymisés dans l'archive (archivés lors d'un passage antérieur)",
            "deleted_directly": "détruits directement dans la base active",
        },
        "no_volume": "Aucun enregistrement traité sur la période.",
        "compliance": "3. Conformité aujourd'hui",
        "compliance_cols": (
            "Catégorie",
            "Table",
            "Plus ancien enregistrement actif",
            "Devait quitter la base active le",
            "En retard",
            "Sans date de départ",
            "Maintenus (lien ouvert)",
            "En attente de re-consentement",
            "Archive échue non détruite",
            "Gel juridique",
            "Statut",
        ),
        "compliance_waiting": "En attente de re-consentement : enregistrements dont la période active est terminée "
        "et que la charte garde le temps de demander à la personne si elle souhaite continuer à recevoir des "
        "sollicitations commerciales, au plus {windows} après la fin de leur période ; ils ne sont pas en retard. "
        "Passé ce délai, un enregistrement encore présent est compté en retard.",
        "ok": "conforme",
        "ko": "NON CONFORME",
        "holds": "4. Gels juridiques et demandes de droits",
        "holds_text": "Un enregistrement sous gel juridique n'est ni archivé, ni détruit, ni anonymisé, par le "
        "calendrier comme par une demande d'effacement, jusqu'à la levée ou l'échéance du gel.",
        "holds_cols": ("Référence", "Portée", "Catégorie / table", "Éléments", "Créé le", "Échéance", "Statut"),
        "no_holds": "Aucun gel juridique enregistré.",
        "hold_status": {"in_force": "en vigueur", "lifted": "levé", "expired": "échu"},
        "requests_cols": ("Référence", "Type", "Échéance", "Jours restants"),
        "no_requests": "Aucune demande de droits ouverte.",
        "overdue": "EN RETARD",
        "campaigns": "5. Campagnes de re-consentement",
        "campaigns_text": "La charte s'engage à recontacter chaque personne avant la fin de sa période active pour "
        "lui demander si elle souhaite continuer à recevoir des sollicitations commerciales. Demandes enregistrées "
        "sur la période, et leur état le {today} : remises au serveur de messagerie, en échec (refus définitif ou "
        "retour), ou jamais envoyées (pas d'adresse utilisable, ou personne sur la liste d'opposition). Un oui "
        "redémarre le délai de conservation ; un non vaut opposition (suppression et effacement) ; sans réponse "
        "à l'échéance des liens, le calendrier suit son cours : archivage, puis destruction.",
        "campaigns_cols": (
            "Catégorie",
            "Demandes enregistrées",
            "En attente d'envoi",
            "Remises",
            "En échec",
            "Non demandées : sans adresse",
            "Non demandées : opposition",
            "Oui",
            "Non",
            "En attente de réponse",
            "Sans réponse (liens échus)",
            "Délais redémarrés",
            "Jetons refusés",
        ),
        "no_reconsent": "Aucune catégorie de la politique ne prévoit de re-consentement.",
        "no_campaign": "Aucune campagne n'a encore eu lieu : le registre des demandes de re-consentement n'existe "
        "pas encore.",
        "refusal_reasons": {
            "forged": "falsifié",
            "expired": "expiré",
            "replayed": "déjà utilisé",
            "unknown": "inconnu",
            "closed": "clos (la ligne a quitté la base active)",
        },
        "unattributed": "Jetons refusés ne nommant aucune catégorie qui demande un re-consentement (un jeton "
        "falsifié n'en nomme aucune de fiable) : {reasons}.",
        "findings": "6. Constats de qualité des données sur la période",
        "findings_cols": ("Catégorie", "Enregistrements sans date de départ signalés", "Contrôles en échec"),
        "no_findings": "Aucun constat sur la période.",
        "chain": "7. Intégrité du journal d'audit",
        "chain_ok": "Chaîne de hachage intacte : {n} événements vérifiés, empreintes de {c} certificat(s) de passage concordantes.",
        "chain_ko": "CHAÎNE ROMPUE à l'événement {at} : {reason} ({n} événements lus).",
        "chain_rewritten": "JOURNAL RÉÉCRIT : il ne correspond plus aux certificats de passage ({m} écart(s), "
        "le premier : {first}) ; sa chaîne est cohérente, il a donc été recalculé.",
        "chain_unverified": "NON VÉRIFIÉ par les certificats de passage : sa chaîne tient ({n} événements), mais "
        "les {o} certificat(s) de {dir} nomment un autre journal ({other}), aucun celui-ci.",
        "chain_emptied": "JOURNAL VIDÉ : {first}",
        "chain_removed": "JOURNAL SUPPRIMÉ : {first}",
        "chain_no_reports": "NON VÉRIFIÉ : le dossier des certificats {dir} est absent (non monté, ou "
        "$RETENTION_REPORTS_DIR erroné) ; sa chaîne tient ({n} événements), mais un journal "
        "recalculé passerait inaperçu.",
        "chain_missing_certificates": "CERTIFICATS MANQUANTS : {m} passage(s) terminé(s) sans certificat de ce "
        "journal dans {dir} ni échec d'écriture consigné (le premier : {first}).",
        "none": "néant",
        "no_archive": "aucune",
        "delete": "destruction",
        "anonymize": "anonymisation",
        "until_end": "jusqu'à",
        "from": "à compter de",
        "or": "ou",
        "after": "après",
        "footer": "Généré le {at}. Ce rapport ne contient que des nombres, des dates et les noms de la politique.",
    },
    "en": {
        "title": "Personal data retention report",
        "intro": "Period covered: {period} (runs dated in this period, from the audit log) · "
        "policy version {version} · state counted on {today} in the database, not taken from the log.",
        "schedule": "1. Retention schedule (as configured)",
        "schedule_cols": (
            "Category",
            "Purpose (charter)",
            "Active base: period, counted from",
            "Intermediate archive",
            "Purpose of the archive / legal basis",
            "End of life",
        ),
        "volumes": "2. Records handled per month",
        "volumes_text": "Records of each category's main tables (their linked rows follow them), handled by "
        "executed runs (not dry runs). A run counts each record once: archived and kept, or "
        "archived then destroyed (or anonymised) by that same run, or destroyed from the archive "
        "where an earlier run had put it, or destroyed directly in the active base for a "
        "category without an archive. A record archived by one run and destroyed by a later "
        "run counts for each of the two.",
        "chart_title": "{label}: records handled by the runs {during}, each counted once",
        "volume_cols": (
            "Category",
            "Table",
            "Month",
            "Archived",
            "of which destroyed or anonymised in the same run",
            "Destroyed or anonymised from the archive (archived before)",
            "Destroyed directly in the active base (no archive)",
            "Records handled (each once)",
        ),
        "segments": {
            "archived_kept": "archived and kept",
            "deleted_same_run": "archived then destroyed in the same run",
            "anonymized_same_run": "archived then anonymised in the same run",
            "deleted_from_archive": "destroyed from the archive (archived by an earlier run)",
            "anonymized_from_archive": "anonymised in the archive (archived by an earlier run)",
            "deleted_directly": "destroyed directly in the active base",
        },
        "no_volume": "No record handled in the period.",
        "compliance": "3. Compliance today",
        "compliance_cols": (
            "Category",
            "Table",
            "Oldest active record",
            "Had to leave the active base on",
            "Overdue",
            "No start date",
            "Held (open link)",
            "Waiting for re-consent",
            "Expired in archive",
            "Legal hold",
            "Status",
        ),
        "compliance_waiting": "Waiting for re-consent: records whose active period has ended and that the charter "
        "keeps while the person is asked whether they wish to keep receiving commercial solicitations, at most "
        "{windows} after their period ends; they are not overdue. A record still there after that is counted "
        "overdue.",
        "ok": "compliant",
        "ko": "NOT COMPLIANT",
        "holds": "4. Legal holds and rights requests",
        "holds_text": "A record under a legal hold is neither archived, destroyed nor anonymised - by the "
        "schedule or by an erasure request - until the hold is lifted or expires.",
        "holds_cols": ("Reference", "Scope", "Category / table", "Items", "Created", "Expires", "Status"),
        "no_holds": "No legal hold recorded.",
        "hold_status": {"in_force": "in force", "lifted": "lifted", "expired": "expired"},
        "requests_cols": ("Reference", "Type", "Due", "Days left"),
        "no_requests": "No open rights request.",
        "overdue": "OVERDUE",
        "campaigns": "5. Re-consent campaigns",
        "campaigns_text": "The charter commits to contacting each person again before their active period ends, to "
        "ask whether they wish to keep receiving commercial solicitations. Asks recorded in the period, and where "
        "they stand on {today}: delivered to the mail server, failed (refused for good, or bounced), or never "
        "sent (no usable address, or the person is on the suppression list). A yes restarts the retention "
        "period; a no is an opposition (suppression and erasure); with no answer when the links expire, the "
        "schedule goes on: archive, then destruction.",
        "campaigns_cols": (
            "Category",
            "Asks recorded",
            "Waiting to be sent",
            "Delivered",
            "Failed",
            "Not asked: no address",
            "Not asked: suppressed",
            "Yes",
            "No",
            "Awaiting an answer",
            "No answer (links expired)",
            "Clock restarts",
            "Refused tokens",
        ),
        "no_reconsent": "No category of the policy asks for re-consent.",
        "no_campaign": "No campaign has run yet: the re-consent register does not exist yet.",
        "refusal_reasons": {
            "forged": "forged",
            "expired": "expired",
            "replayed": "replayed",
            "unknown": "unknown",
            "closed": "closed (the row had left the active base)",
        },
        "unattributed": "Refused tokens naming no category that asks for re-consent (a forged token names none "
        "that can be believed): {reasons}.",
        "findings": "6. Data-quality findings in the period",
        "findings_cols": ("Category", "Records without a start date reported", "Failed checks"),
        "no_findings": "No finding in the period.",
        "chain": "7. Audit log integrity",
        "chain_ok": "Hash chain intact: {n} events verified, hashes of {c} run certificate(s) matched.",
        "chain_ko": "CHAIN BROKEN at event {at}: {reason} ({n} events read).",
        "chain_rewritten": "LOG REWRITTEN: it no longer matches the run certificates ({m} mismatch(es), "
        "the first: {first}); its chain is consistent, so it was re-hashed.",
        "chain_unverified": "NOT VERIFIED against the run certificates: its chain holds ({n} events), but the "
        "{o} certificate(s) in {dir} name another log ({other}), none this one.",
        "chain_emptied": "LOG EMPTIED: {first}",
        "chain_removed": "LOG REMOVED: {first}",
        "chain_no_reports": "NOT VERIFIED: the certificates folder {dir} is missing (not mounted, or "
        "$RETENTION_REPORTS_DIR is wrong); its chain holds ({n} events), but a re-hashed log "
        "would pass unseen.",
        "chain_missing_certificates": "CERTIFICATES MISSING: {m} finished run(s) with no certificate of this log "
        "in {dir} and no recorded failure to write it (the first: {first}).",
        "none": "none",
        "no_archive": "none",
        "delete": "deletion",
        "anonymize": "anonymisation",
        "until_end": "until",
        "from": "from",
        "or": "or",
        "after": "after",
        "footer": "Generated {at}. This report holds only counts, dates and names from the policy.",
    },
}
