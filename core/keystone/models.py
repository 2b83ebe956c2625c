"""Identity tables (Keystone v3 shapes; ids are 32 hex chars)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_hex_id, str64, str255, utcnow


class _Row:
    id: Mapped[str64] = mapped_column(primary_key=True, default=new_hex_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Domain(_Row, Base):
    __tablename__ = "ks_domains"
    name: Mapped[str255] = mapped_column(unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Project(_Row, Base):
    __tablename__ = "ks_projects"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    name: Mapped[str255]
    domain_id: Mapped[str64] = mapped_column(ForeignKey("ks_domains.id"), index=True)
    parent_id: Mapped[str64 | None] = mapped_column(String(64), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(_Row, Base):
    __tablename__ = "ks_users"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    name: Mapped[str255]
    domain_id: Mapped[str64] = mapped_column(ForeignKey("ks_domains.id"), index=True)
    password_hash: Mapped[str255] = mapped_column(default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    email: Mapped[str255] = mapped_column(default="")
    description: Mapped[str] = mapped_column(Text, default="")
    default_project_id: Mapped[str64 | None] = mapped_column(String(64), default=None)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    # tokens issued before this instant are dead (password change/reset: Keystone's user revocation)
    revoke_before: Mapped[datetime | None] = mapped_column(default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Group(_Row, Base):
    __tablename__ = "ks_groups"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    name: Mapped[str255]
    domain_id: Mapped[str64] = mapped_column(ForeignKey("ks_domains.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")


class GroupMember(Base):
    __tablename__ = "ks_group_users"
    group_id: Mapped[str64] = mapped_column(ForeignKey("ks_groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str64] = mapped_column(ForeignKey("ks_users.id", ondelete="CASCADE"), primary_key=True,
                                           index=True)


class Role(_Row, Base):
    __tablename__ = "ks_roles"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)
    name: Mapped[str255]
    # "" for global roles (Keystone uses NULL; "" keeps the unique constraint portable)
    domain_id: Mapped[str64] = mapped_column(default="")
    description: Mapped[str] = mapped_column(Text, default="")


class Assignment(Base):
    """A role granted to an actor (user/group) on a target (project/domain/system)."""

    __tablename__ = "ks_assignments"
    actor_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # user | group
    actor_id: Mapped[str64] = mapped_column(primary_key=True)
    target_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # project | domain | system
    target_id: Mapped[str64] = mapped_column(primary_key=True)  # "all" for system
    role_id: Mapped[str64] = mapped_column(ForeignKey("ks_roles.id", ondelete="CASCADE"), primary_key=True)
    inherited: Mapped[bool] = mapped_column(default=False)


class ImpliedRole(Base):
    """``prior`` implies ``implied`` (admin ⊃ member ⊃ reader by default); expanded transitively."""

    __tablename__ = "ks_implied_roles"
    prior_role_id: Mapped[str64] = mapped_column(ForeignKey("ks_roles.id", ondelete="CASCADE"), primary_key=True)
    implied_role_id: Mapped[str64] = mapped_column(ForeignKey("ks_roles.id", ondelete="CASCADE"),
                                                   primary_key=True)


class Region(Base):
    __tablename__ = "ks_regions"
    id: Mapped[str255] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255), default=None)


class Service(_Row, Base):
    __tablename__ = "ks_services"
    type: Mapped[str255] = mapped_column(index=True)
    name: Mapped[str255]
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)


class Endpoint(_Row, Base):
    __tablename__ = "ks_endpoints"
    service_id: Mapped[str64] = mapped_column(ForeignKey("ks_services.id", ondelete="CASCADE"), index=True)
    interface: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[str255] = mapped_column(default="")
    url: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)


class RevokedToken(Base):
    """Revocation by audit id; rows expire with the token they revoke."""

    __tablename__ = "ks_revoked_tokens"
    audit_id: Mapped[str64] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserCredential(Base):
    """A user's credential (EC2-style access/secret); the blob is Fernet-encrypted at rest."""

    __tablename__ = "ks_credentials"
    id: Mapped[str64] = mapped_column(primary_key=True)  # ec2: sha256(access), as Keystone does
    user_id: Mapped[str64] = mapped_column(ForeignKey("ks_users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str64 | None] = mapped_column(String(64), default=None)
    type: Mapped[str] = mapped_column(String(64))
    encrypted_blob: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Policy(_Row, Base):
    """Keystone's ``/v3/policies`` resource: an opaque blob with a MIME type (stored, not enforced)."""

    __tablename__ = "ks_policies"
    type: Mapped[str255]
    blob: Mapped[str] = mapped_column(Text)


class Revision(Base):
    """One counter bumped by every change that can invalidate a cached token (see auth.Validator)."""

    __tablename__ = "ks_revision"
    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)


class ApplicationCredential(Base):
    """Keystone's application credential: a user's delegated login to one project with a subset of
    the user's roles there. Only a hash of the secret is kept (the secret is shown once, at creation)."""

    __tablename__ = "ks_app_creds"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[str64] = mapped_column(primary_key=True, default=new_hex_id)
    name: Mapped[str255]
    user_id: Mapped[str64] = mapped_column(ForeignKey("ks_users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str64] = mapped_column(ForeignKey("ks_projects.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    secret_hash: Mapped[str255]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # may create/delete other application credentials (Keystone's "unrestricted")
    unrestricted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppCredRole(Base):
    __tablename__ = "ks_app_cred_roles"
    app_cred_id: Mapped[str64] = mapped_column(ForeignKey("ks_app_creds.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[str64] = mapped_column(ForeignKey("ks_roles.id", ondelete="CASCADE"), primary_key=True)


class AccessRule(Base):
    """What a token from an application credential may call: service type, HTTP method and a path
    glob (``*`` one segment, ``**`` any). Owned by a user and shared by that user's credentials."""

    __tablename__ = "ks_access_rules"
    __table_args__ = (UniqueConstraint("user_id", "service", "path", "method"),)
    id: Mapped[str64] = mapped_column(primary_key=True, default=new_hex_id)
    user_id: Mapped[str64] = mapped_column(ForeignKey("ks_users.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(16))


class AppCredAccessRule(Base):
    __tablename__ = "ks_app_cred_rules"
    app_cred_id: Mapped[str64] = mapped_column(ForeignKey("ks_app_creds.id", ondelete="CASCADE"), primary_key=True)
    # the route refuses to delete a rule in use (403, as in Keystone); the cascade is for deleting a user
    # (MariaDB checks each cascaded row at once, so both parents of a row must cascade to it)
    access_rule_id: Mapped[str64] = mapped_column(ForeignKey("ks_access_rules.id", ondelete="CASCADE"),
                                                  primary_key=True, index=True)
