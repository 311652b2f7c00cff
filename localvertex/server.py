"""The local Vertex AI REST server: assembles the FastAPI app from its parts.

Serves, under both ``/v1/`` and ``/v1beta1/``, the slice of Vertex AI that
``google-genai`` uses for supervised tuning and for prediction on tuned endpoints, plus a
``/token`` endpoint that plays the OAuth token server for the fake service-account key in
``<data_dir>/credentials.json``. See README.md for the routes and the module layout.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from .auth import Auth, BearerAuthMiddleware
from .cloud_logging import TaskLogReader
from .jobs import JobStore, TrainingRunner
from .middleware import BodySizeLimitMiddleware, RequestLogMiddleware, install_error_handlers
from .pipelines.registry import TemplateRegistry
from .pipelines.schedules import ScheduleService
from .pipelines.schedules_scheduler import Scheduler, starter_from
from .pipelines.service import PipelineService, active_run_count, create_pipeline_job, record_operation
from .prediction import Predictor
from .routes import API_VERSIONS, BlockingIO, Services, include_routes
from .storage import GcsReader

__all__ = ["DEFAULT_MAX_BODY", "LocalVertex", "build_app"]

DEFAULT_MAX_BODY = 32 * 1024 * 1024  # 20 MB image as base64 is ~27 MB


class LocalVertex:
    """Everything the HTTP app needs: auth, job store, runner, storage reader, predictor."""

    def __init__(
        self,
        data_dir: Path,
        storage_endpoint: str,
        project: str = "local-project",
        max_body: int = DEFAULT_MAX_BODY,
        storage_files: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.storage_endpoint = storage_endpoint
        self.max_body = max_body
        self.auth = Auth(self.data_dir, project)
        self.store = JobStore(self.data_dir)
        self.runner = TrainingRunner(self.store, self.data_dir, storage_endpoint)
        # storage_files: the storage server's filesystem root, read directly (storage.py).
        self.reader = GcsReader(storage_endpoint, project, files_root=storage_files)
        self.predictor = Predictor(self.runner.models_dir)
        self.pipelines = PipelineService(self.data_dir)  # PipelineJobs and ML Metadata
        # Schedules start runs through the PipelineJobs service, as Vertex's scheduler does.
        self.schedules = ScheduleService(
            self.data_dir,
            starter_from(partial(create_pipeline_job, self), partial(active_run_count, self)),
            operations=partial(record_operation, self),
        )
        self.scheduler = Scheduler(self.schedules)
        self.registry = TemplateRegistry(self.data_dir)  # Artifact Registry's KFP repositories
        self.pipelines.templates = self.registry.resolve_template  # templateUri -> spec, templateMetadata
        self.io = BlockingIO(8)
        self.services = Services(
            auth=self.auth,
            store=self.store,
            runner=self.runner,
            reader=self.reader,
            predictor=self.predictor,
            io=self.io,
        )
        self.app = build_app(self)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.runner.start()
            self.pipelines.start()
            self.scheduler.start()
            self._started = True

    def close(self) -> None:
        if self._started:
            self.scheduler.stop()  # no run may start while the pipelines stop
            self.pipelines.close()  # first: a cancelled task may still cancel its tuning job
            self.runner.stop()
            self._started = False
        self.predictor.close()
        self.io.close()


def build_app(lv: LocalVertex) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        lv.start()
        yield

    app = FastAPI(title="localvertex", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.services = lv.services
    app.state.pipelines = lv.pipelines
    app.state.schedules = lv.schedules
    app.state.registry = lv.registry
    app.state.task_logs = TaskLogReader(lv.data_dir)  # Cloud Logging's entries:list reads through it
    install_error_handlers(app)
    # The last middleware added runs first: token check, then size limit, then the log.
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_body=lv.max_body)
    app.add_middleware(BearerAuthMiddleware, auth=lv.auth, prefixes=tuple(f"/{v}/" for v in API_VERSIONS))
    include_routes(app)
    return app
