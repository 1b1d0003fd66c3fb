"""The registry's services, built once per application by ``Registry.build``."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import RegistrySettings
from ...metadata.db import Database
from ...storage.driver import StorageDriver
from .blobs import BlobService
from .gc import GarbageCollector
from .lifecycle import LifecycleService
from .manifests import EventSink, ManifestService, TagPolicy
from .pulls import PullCounter
from .uploads import UploadService


@dataclass(frozen=True)
class Registry:
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    gc: GarbageCollector
    lifecycle: LifecycleService
    pulls: PullCounter

    @classmethod
    def build(
        cls,
        db: Database,
        storage: StorageDriver,
        settings: RegistrySettings,
        tag_policy: TagPolicy | None = None,
        events: EventSink | None = None,
    ) -> Registry:
        lifecycle = LifecycleService(db, notify=events.emit if events is not None else None)
        uploads = UploadService(db, storage, lifecycle)
        pulls = PullCounter(db, settings.pull_flush_seconds)
        return cls(
            blobs=BlobService(db, storage, settings.delete_enabled),
            uploads=uploads,
            gc=GarbageCollector(db, storage, uploads),
            manifests=ManifestService(
                db,
                delete_enabled=settings.delete_enabled,
                validate_index_children=settings.validate_index_children,
                max_manifest_bytes=settings.max_manifest_bytes,
                tags_max_entries=settings.tags_max_entries,
                catalog_max_entries=settings.catalog_max_entries,
                tag_policy=tag_policy,
                events=events,
                lifecycle=lifecycle,
                pulls=pulls,
            ),
            lifecycle=lifecycle,
            pulls=pulls,
        )
