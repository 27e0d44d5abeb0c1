"""Out-of-office and other automatic replies, and the return date they announce.

An auto-reply is not a reply: nobody read our email. Headers decide first (RFC 3834
`Auto-Submitted`, and the `X-Autoreply`/`X-Autorespond`/`Precedence: auto_reply`
that Exchange, Postfix vacation and others add); then common subjects in English,
Italian, German and French.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from cadenza.domain.inbound.parse import Inbound

_SUBJECTS = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|autorespon|"
    r"away from (the )?office|on vacation|on holiday|on leave|"
    r"risposta automatica|fuori (sede|ufficio)|assente|in ferie|"
    r"automatische antwort|abwesenheit|abwesend|nicht im büro|außer haus|urlaub|"
    r"réponse automatique|absent|absence|message d'absence|en congés?|en vacances",
    re.IGNORECASE,
)

# How far ahead a stated return date is believed; beyond it we fall back to the default.
MAX_AHEAD = timedelta(days=120)

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            "january jan gennaio gen januar jänner janvier janv",
            "february feb febbraio febbr februar février fevrier févr",
            "march mar marzo märz maerz mars",
            "april apr aprile avril avr",
            "may maggio mag mai",
            "june jun giugno giu juni juin",
            "july jul luglio lug juli juillet juil",
            "august aug agosto ago août aout",
            "september sep sept settembre set septembre",
            "october oct ottobre ott oktober okt octobre",
            "november nov novembre novembre",
            "december dec dicembre dic dezember dez décembre decembre déc",
        ],
        start=1,
    )
    for name in names.split()
}
_MONTH = "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True))
_DATES = [
    # 2026-03-10
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
    # 10 March 2026, 10th of March, 10. März, 10 marzo, 1er mars
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th|er|\.|º)?\s+(?:of\s+|de\s+)?(?P<mn>{_MONTH})\b\.?"
        r"(?:,?\s+(?P<y>\d{4}))?",
        re.IGNORECASE,
    ),
    # March 10, 2026 / March 10th
    re.compile(
        rf"\b(?P<mn>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>\d{{4}}))?",
        re.IGNORECASE,
    ),
    # 10/03/2026, 10.03.2026, 10.03. (day first: the common reading in these languages)
    re.compile(r"\b(?P<d>\d{1,2})[./](?P<m>\d{1,2})(?:[./](?P<y>\d{2,4})|\.)(?!\d)"),
]
# Words just before a date saying it is the last day away (so the return is the day after)…
_UNTIL = re.compile(
    r"(until|till|through|thru|to|-|–|fino al?|sino al?|al|bis( zum| einschließlich)?|"
    r"jusqu'?’?(au|à)|au)\s*(\w+,?\s+)?(the\s+)?$",
    re.IGNORECASE,
)
# …or that it is the day of return.
_BACK = re.compile(
    r"(back|return|returning|rientr|torner|di nuovo|zurück|wieder|ab dem|retour|reviens)",
    re.IGNORECASE,
)


def is_auto_reply(inbound: Inbound) -> bool:
    auto_submitted = inbound.header("Auto-Submitted").lower()  # pragma: no mutate
    if auto_submitted and auto_submitted != "no":
        return True
    if inbound.header("X-Autoreply") or inbound.header("X-Autorespond"):  # pragma: no mutate
        return True
    if inbound.header("Precedence").lower() == "auto_reply":  # pragma: no mutate
        return True
    if inbound.header("X-Auto-Response-Suppress") and _SUBJECTS.search(inbound.subject):
        return True  # Exchange marks its own automatic replies so
    return bool(_SUBJECTS.search(inbound.subject))


def return_date(text: str, received: date) -> date | None:
    """The day the sender is back, if the text states one between tomorrow and MAX_AHEAD.

    Every date found is read as a return day ("back on 10 March") or, after "until",
    "bis", "fino al", "jusqu'au"…, as the last day away. The latest one wins: "away
    from 2 to 9 March, back on 10 March" returns the 10th either way.
    """
    found: list[date] = []
    for pattern in _DATES:
        for match in pattern.finditer(text):
            day = _to_date(match, received)
            if day is None:
                continue
            before = text[max(0, match.start() - 40) : match.start()]
            sentence = re.split(r"[.!?\n]\s", before)[-1]
            if _UNTIL.search(sentence) and not _BACK.search(sentence):
                day += timedelta(days=1)
            if received < day <= received + MAX_AHEAD:
                found.append(day)
    return max(found) if found else None


def _to_date(match: re.Match[str], received: date) -> date | None:
    parts = match.groupdict()
    month = _MONTHS.get(parts["mn"].lower()) if parts.get("mn") else int(parts["m"])
    if month is None:  # a month name we do not know
        return None
    year = parts.get("y")
    try:
        if year:
            number = int(year)
            return date(number + 2000 if number < 100 else number, month, int(parts["d"]))
        candidate = date(received.year, month, int(parts["d"]))
    except (TypeError, ValueError):
        return None
    if candidate < received - timedelta(days=31):  # "back on 5 January", said in December
        candidate = candidate.replace(year=candidate.year + 1)
    return candidate
