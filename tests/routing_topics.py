"""The vocabulary of the synthetic team mail that the routing tests train on: a few words per team, filler shared by all."""

from __future__ import annotations

from datetime import UTC, datetime

TOPICS = {
    "legal": "trademark lawyer copyright court licence takedown contract lawsuit",
    "press": "journalist interview newspaper statement reporter article podcast deadline",
    "tech": "password login server outage bug account reset crash",
}
FILLER = ["hello", "thanks", "please", "question", "chapter", "volunteer", "regards", "team", "week", "today", "help"]
START = datetime(2026, 1, 1, tzinfo=UTC)
