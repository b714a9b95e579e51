"""A contact is a person, not an address: `contact_addresses` (the old contacts.address moves
there, as each contact's primary address), labels, the history of edits, merges, and on
contacts a stable uid (the vCard UID), notes, consent and merged_into_id.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_addresses_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_addresses')),
    sa.UniqueConstraint('address', name=op.f('uq_contact_addresses_address'))
    )
    with op.batch_alter_table('contact_addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_addresses_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('uq_contact_addresses_primary', ['contact_id'], unique=True,
                              postgresql_where=sa.text('is_primary'), sqlite_where=sa.text('is_primary'))

    op.create_table('contact_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_labels_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_labels')),
    sa.UniqueConstraint('contact_id', 'kind', 'value', name=op.f('uq_contact_labels_contact_id'))
    )
    with op.batch_alter_table('contact_labels', schema=None) as batch_op:
        batch_op.create_index('ix_contact_labels_kind_value', ['kind', 'value'], unique=False)

    op.create_table('contact_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=True),
    sa.Column('old', sa.Text(), nullable=True),
    sa.Column('new', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_changes_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_changes'))
    )
    with op.batch_alter_table('contact_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_changes_contact_id'), ['contact_id'], unique=False)

    op.create_table('contact_merges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survivor_id', sa.Integer(), nullable=False),
    sa.Column('merged_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('address_ids', sa.JSON(), nullable=False),
    sa.Column('ticket_ids', sa.JSON(), nullable=False),
    sa.Column('labels_added', sa.JSON(), nullable=False),
    sa.Column('survivor_before', sa.JSON(), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['merged_id'], ['contacts.id'], name=op.f('fk_contact_merges_merged_id_contacts')),
    sa.ForeignKeyConstraint(['survivor_id'], ['contacts.id'], name=op.f('fk_contact_merges_survivor_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_merges'))
    )
    with op.batch_alter_table('contact_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_merges_merged_id'), ['merged_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_merges_survivor_id'), ['survivor_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uid', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))

    # the data: every address becomes its contact's primary address; every contact gets a uid
    bind = op.get_bind()
    contacts = sa.table('contacts', sa.column('id', sa.Integer()), sa.column('address', sa.String()),
                        sa.column('first_seen', sa.DateTime(timezone=True)), sa.column('uid', sa.String()))
    addresses = sa.table('contact_addresses', sa.column('contact_id', sa.Integer()),
                         sa.column('address', sa.String()), sa.column('is_primary', sa.Boolean()),
                         sa.column('added_at', sa.DateTime(timezone=True)), sa.column('source', sa.String()))
    op.execute(addresses.insert().from_select(
        ['contact_id', 'address', 'is_primary', 'added_at', 'source'],
        sa.select(contacts.c.id, contacts.c.address, sa.true(), contacts.c.first_seen, sa.literal('migration'))))
    ids = [row[0] for row in bind.execute(sa.select(contacts.c.id))]
    if ids:
        bind.execute(contacts.update().where(contacts.c.id == sa.bindparam('cid')).values(uid=sa.bindparam('u')),
                     [{'cid': cid, 'u': uuid.uuid4().hex} for cid in ids])

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.alter_column('uid', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_contacts_uid'), ['uid'])
        batch_op.create_index(batch_op.f('ix_contacts_merged_into_id'), ['merged_into_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_contacts_merged_into_id_contacts'), 'contacts',
                                    ['merged_into_id'], ['id'])
        batch_op.drop_constraint(batch_op.f('uq_contacts_address'), type_='unique')
        batch_op.drop_column('address')


def downgrade() -> None:
    """Back to one address per contact: the primary one (a contact left without one, merged into
    another, gets a placeholder); the other addresses, labels, history and merges are dropped."""
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=320), nullable=True))
    op.execute(sa.text(
        "UPDATE contacts SET address = COALESCE((SELECT a.address FROM contact_addresses a "
        "WHERE a.contact_id = contacts.id AND a.is_primary), 'contact-' || CAST(id AS VARCHAR(20)) || '@invalid')"))
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.alter_column('address', existing_type=sa.String(length=320), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_contacts_address'), ['address'])
        batch_op.drop_constraint(batch_op.f('fk_contacts_merged_into_id_contacts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_contacts_merged_into_id'))
        batch_op.drop_constraint(batch_op.f('uq_contacts_uid'), type_='unique')
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('consent')
        batch_op.drop_column('notes')
        batch_op.drop_column('uid')
    op.drop_table('contact_merges')
    op.drop_table('contact_changes')
    op.drop_table('contact_labels')
    with op.batch_alter_table('contact_addresses', schema=None) as batch_op:
        batch_op.drop_index('uq_contact_addresses_primary', postgresql_where=sa.text('is_primary'),
                            sqlite_where=sa.text('is_primary'))
    op.drop_table('contact_addresses')
