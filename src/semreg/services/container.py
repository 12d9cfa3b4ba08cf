"""The services of one server, bundled; built by the composition roots. Imports: services."""

from __future__ import annotations

from dataclasses import dataclass

from semreg.domain.manifest import DEFAULT_MAX_REFERENCES
from semreg.metadata.engine import Database
from semreg.services.blobs import (
    DEFAULT_CHECKPOINT_BYTES,
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_MAX_UPLOADS_PER_OWNER,
    BlobService,
)
from semreg.services.feeds import FeedService
from semreg.services.manifests import ManifestService
from semreg.services.principals import PrincipalService
from semreg.services.promotion import PromotionService
from semreg.services.releases import ReleaseService
from semreg.services.tokens import AuthConfig, TokenService
from semreg.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class Services:
    db: Database
    store: BlobStore
    feeds: FeedService
    blobs: BlobService
    manifests: ManifestService
    releases: ReleaseService
    tokens: TokenService
    principals: PrincipalService
    promotions: PromotionService

    @classmethod
    def build(
        cls,
        db: Database,
        store: BlobStore,
        max_manifest_bytes: int,
        auth: AuthConfig,
        checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES,
        max_uploads_per_principal: int = DEFAULT_MAX_UPLOADS_PER_OWNER,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
        max_manifest_references: int = DEFAULT_MAX_REFERENCES,
    ) -> Services:
        return cls(
            db=db,
            store=store,
            feeds=FeedService(db),
            blobs=BlobService(
                db, store, checkpoint_bytes, max_uploads_per_principal, checkpoint_seconds
            ),
            manifests=ManifestService(db, store, max_manifest_bytes, max_manifest_references),
            releases=ReleaseService(db),
            tokens=TokenService(db, auth),
            principals=PrincipalService(db),
            promotions=PromotionService(db),
        )
