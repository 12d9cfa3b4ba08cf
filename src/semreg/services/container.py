"""The services of one server, bundled; built by the composition roots. Imports: services."""

from __future__ import annotations

from dataclasses import dataclass

from semreg.metadata.engine import Database
from semreg.services.blobs import DEFAULT_CHECKPOINT_BYTES, BlobService
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
    ) -> Services:
        return cls(
            db=db,
            store=store,
            feeds=FeedService(db),
            blobs=BlobService(db, store, checkpoint_bytes),
            manifests=ManifestService(db, store, max_manifest_bytes),
            releases=ReleaseService(db),
            tokens=TokenService(db, auth),
            principals=PrincipalService(db),
            promotions=PromotionService(db),
        )
