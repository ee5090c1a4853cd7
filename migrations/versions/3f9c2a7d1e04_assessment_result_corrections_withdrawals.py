"""assessment results: corrections (superseded by a new row) and withdrawal of a result entered in error

Revision ID: 3f9c2a7d1e04
Revises: 600c77f6dd40
Create Date: 2026-11-26 14:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

import telerehab.db_types

# revision identifiers, used by Alembic.
revision = '3f9c2a7d1e04'
down_revision = '600c77f6dd40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('assessment_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('superseded_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('superseded_at', telerehab.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('superseded_by_user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('superseded_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_at', telerehab.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_reason', sa.Text(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_assessment_results_superseded_by_id'), ['superseded_by_id'])
        batch_op.create_foreign_key(batch_op.f('fk_assessment_results_superseded_by_id_assessment_results'),
                                    'assessment_results', ['superseded_by_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_assessment_results_superseded_by_user_id_users'),
                                    'users', ['superseded_by_user_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_assessment_results_withdrawn_by_id_users'),
                                    'users', ['withdrawn_by_id'], ['id'])


def downgrade():
    with op.batch_alter_table('assessment_results', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_assessment_results_withdrawn_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_assessment_results_superseded_by_user_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_assessment_results_superseded_by_id_assessment_results'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_assessment_results_superseded_by_id'), type_='unique')
        batch_op.drop_column('withdrawn_reason')
        batch_op.drop_column('withdrawn_by_id')
        batch_op.drop_column('withdrawn_at')
        batch_op.drop_column('superseded_reason')
        batch_op.drop_column('superseded_by_user_id')
        batch_op.drop_column('superseded_at')
        batch_op.drop_column('superseded_by_id')
