"""What the liaison keeps about a contact beyond its addresses: labels (languages, projects,
roles, tags), the history of edits, and merges (with what they moved, so that undo is exact)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, intpk, jsondict, jsonlist, utc

LABEL_KINDS = ("language", "project", "role", "tag")


class ContactLabel(Base):
    """One label of a contact: a language they speak, a project or wiki they work on, a role
    (affiliate organiser, press, former liaison) or a free tag ("eyes and ears" on a project).
    One row per label so that the contact list filters by an index, not by reading JSON."""

    __tablename__ = "contact_labels"
    __table_args__ = (
        UniqueConstraint("contact_id", "kind", "value"),
        Index("ix_contact_labels_kind_value", "kind", "value"),
    )

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(200))


class ContactChange(Base):
    """One change to a contact: who changed which field from what to what (the contact page's
    history). `action` says how (edit, merge, unmerge, import); `detail` holds the rest."""

    __tablename__ = "contact_changes"

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    at: Mapped[utc]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[jsondict]


class ContactMerge(Base):
    """Contact `merged_id` merged into `survivor_id`: the addresses and tickets it moved, and the
    survivor's fields before, so that `unmerge` puts back exactly what belonged to whom."""

    __tablename__ = "contact_merges"

    id: Mapped[intpk]
    survivor_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    at: Mapped[utc]
    actor: Mapped[str] = mapped_column(String(200))
    address_ids: Mapped[jsonlist]
    ticket_ids: Mapped[jsonlist]
    labels_added: Mapped[jsonlist]  # [kind, value] pairs the survivor gained
    survivor_before: Mapped[jsondict]  # field -> value the merge overwrote on the survivor
    undone_at: Mapped[utc | None]
    undone_by: Mapped[str | None] = mapped_column(String(200))


__all__ = ["LABEL_KINDS", "ContactChange", "ContactLabel", "ContactMerge"]
