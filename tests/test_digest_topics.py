"""Rising topics and digest weeks: the pure maths, on hand-made fixtures."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from triage.digest.topics import Thresholds, rising_terms, stop_words, surprise, terms
from triage.digest.weeks import Week, WeekError, due_week, last_complete_week, parse_week, send_time
from triage.teams import TeamsFileError, load_teams

FILLER = [f"filler{i}" for i in range(40)]


def documents(count: int, terms_in: dict[str, int], seed: int) -> list[set[str]]:
    """`count` documents of four filler words each; term t is added to the first terms_in[t] of them."""
    pick = random.Random(seed)
    docs = [set(pick.sample(FILLER, 4)) for _ in range(count)]
    for term, k in terms_in.items():
        for doc in docs[:k]:
            doc.add(term)
    return docs


WEEK = documents(20, {"visa": 4, "grant": 6, "zebra": 1}, seed=1)  # visa 20%, grant 30%, zebra once
BEFORE = documents(200, {"visa": 2, "grant": 60}, seed=2)  # visa 1%, grant 30%


def test_a_term_that_jumps_from_one_to_twenty_percent_rises() -> None:
    """visa: in 1% of the tickets before and 20% this week, the one rising term, with its shares."""
    found = rising_terms(WEEK, BEFORE)
    assert [r.term for r in found] == ["visa"]
    [visa] = found
    assert (visa.count, visa.tickets, visa.before_count, visa.before_tickets) == (4, 20, 2, 200)
    assert visa.share == pytest.approx(0.20) and visa.before_share == pytest.approx(0.01)
    assert visa.p < 0.001 and visa.lift == pytest.approx(20.0)


def test_a_constant_common_term_does_not_rise() -> None:
    """grant: 30% before and 30% now, no surprise at all however common it is."""
    assert surprise(6, 20, 60, 200) > 0.5
    assert "grant" not in {r.term for r in rising_terms(WEEK, BEFORE)}


def test_a_term_seen_once_does_not_rise_even_when_new() -> None:
    """zebra: one ticket this week, never before: an anecdote, below the minimum count."""
    assert "zebra" not in {r.term for r in rising_terms(WEEK, BEFORE, Thresholds(max_p=1.0, min_lift=1.0))}
    assert "zebra" in {r.term for r in rising_terms(WEEK, BEFORE, Thresholds(min_count=1, max_p=1.0, min_lift=1.0,
                                                                                limit=100))}


def test_a_significant_but_small_increase_is_not_well_above() -> None:
    """A term at 30% before and 45% of a big week is detectably up, but under twice its share: not rising."""
    week = documents(400, {"logo": 180}, seed=3)
    before = documents(2000, {"logo": 600}, seed=4)
    assert surprise(180, 400, 600, 2000) < 1e-6
    assert rising_terms(week, before) == []


def test_noise_and_a_short_history_do_not_rise() -> None:
    """5 of 20 against 7.5% before happens by chance; 3 of 5 against none of 10 is too little history."""
    assert surprise(5, 20, 15, 200) > 0.01
    assert surprise(3, 5, 0, 10) > 0.01
    assert rising_terms([{"x"}] * 3 + [set()] * 2, [set()] * 10) == []


def test_nothing_rises_without_history() -> None:
    """The first weeks of a desk have nothing to rise above."""
    assert rising_terms(WEEK, []) == [] and rising_terms([], BEFORE) == []


def test_a_new_term_in_many_tickets_rises_with_infinite_lift() -> None:
    """A term never seen before and in five of twenty tickets rises; its lift is infinite."""
    week = documents(20, {"outage": 5}, seed=5)
    [found] = rising_terms(week, BEFORE)
    assert found.term == "outage" and math.isinf(found.lift) and found.before_share == 0.0


def test_terms_leave_out_stop_words_addresses_domains_and_references() -> None:
    """Stop words of the desk's languages, greetings, mail and web addresses, domains, ticket
    references and numbers never become terms; hyphens and apostrophes cut words."""
    text = ("Hello, the Visa-letter for the summit! Write to counsel@lawfirm.example or see "
            "https://docs.example.org/visa and meta.wikimedia.org, ticket T-2026-00042, 2026, 2FA. "
            "Bonjour, la lettre d'invitation. Hallo, die Einladung für das Treffen. Gracias, saludos.")
    found = terms(text, stop_words())
    assert found == {"visa", "letter", "summit", "write", "ticket", "2fa", "lettre", "invitation", "einladung",
                     "treffen"}
    assert not {"lawfirm", "counsel", "docs", "wikimedia", "meta", "example", "org", "2026", "00042"} & found


def test_stop_words_cover_the_desk_languages() -> None:
    """English, German, French and Spanish function words are stop words; an unknown code is skipped."""
    stop = stop_words(("en", "de", "fr", "es", "xx"))
    assert {"the", "und", "avec", "para", "hello", "regards"} <= stop
    assert "visa" not in stop and "grant" not in stop


def test_iso_weeks_parse_and_bound_in_the_team_time_zone() -> None:
    """2026-W48 runs from Monday 23 November, local midnight to local midnight."""
    week = parse_week("2026-W48")
    assert str(week) == "2026-W48" and week.monday.isoformat() == "2026-11-23"
    assert week.bounds("UTC") == (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    assert week.bounds("Europe/Berlin")[0] == datetime(2026, 11, 22, 23, tzinfo=UTC)
    assert Week(2026, 1).shifted(-1) == Week(2025, 1).shifted(51)  # across a year
    for bad in ("2026-48", "2026-W54", "2025-W53", "W48"):
        with pytest.raises(WeekError):
            parse_week(bad)


def test_the_previous_week_is_due_from_the_send_time() -> None:
    """With Monday 08:00 the digest of last week is due from Monday 08:00 to Sunday night, not before."""
    monday = datetime(2026, 11, 30, 7, 59, tzinfo=UTC)
    assert due_week(monday, "UTC", 1, 8) is None
    assert due_week(monday.replace(hour=8, minute=0), "UTC", 1, 8) == parse_week("2026-W48")
    assert due_week(datetime(2026, 12, 6, 23, tzinfo=UTC), "UTC", 1, 8) == parse_week("2026-W48")
    assert due_week(datetime(2026, 12, 2, 8, tzinfo=UTC), "UTC", 3, 9) is None  # Wednesday 09:00
    assert send_time(parse_week("2026-W49"), "Europe/Berlin", 1, 8) == datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert last_complete_week(monday, "UTC") == parse_week("2026-W48")


def test_the_teams_file_opts_in_and_refuses_a_wrong_schedule(tmp_path: Path) -> None:
    """`digest = true` with its weekday and hour is read; a wrong value names the team and the key."""
    path = tmp_path / "teams.toml"
    path.write_text('[teams.legal]\naddress = "legal@example.org"\ndigest = true\ndigest_weekday = 5\n'
                    '[teams.events]\naddress = "events@example.org"\n', encoding="utf-8")
    teams = load_teams(path)
    assert (teams["legal"].digest, teams["legal"].digest_weekday, teams["legal"].digest_hour) == (True, 5, 8)
    assert (teams["events"].digest, teams["events"].digest_weekday) == (False, 1)
    for bad, key in (("digest = 'yes'", "digest"), ("digest_hour = 24", "digest_hour"),
                     ("digest_weekday = 0", "digest_weekday")):
        path.write_text(f'[teams.legal]\naddress = "legal@example.org"\n{bad}\n', encoding="utf-8")
        with pytest.raises(TeamsFileError, match=rf"\[teams.legal\] {key} must"):
            load_teams(path, required=False)
