"""The Job page: a job's state and progress (done, failed, total), refreshed by console.js from a
server-rendered fragment until it ends, and its Cancel form.

As the admin API's jobs operations: a tenant key sees only its own tenant's jobs (another tenant's
job, or a path segment that cannot be a job id, is the same 404 page as a missing job), and a
cancel goes through `JobStore.request_cancel` with the same `job_cancel` audit record.
"""

from __future__ import annotations

from aiohttp import web

from hub.console.call import Call, redirect
from hub.console.refusal import not_found
from hub.jobs.store import Job, JobStore

NOTICES = {
    "replay_started": "The replay is queued: a runner of the hub picks it up shortly.",
    "cancel_requested": "Cancel requested: a running job stops after the batch under way.",
    "already_finished": "The job had already finished: nothing to cancel.",
}
"""What a form's redirect may announce, by code (the page never reflects text from the query)."""


async def job_store(call: Call) -> JobStore:
    """The jobs bucket (created when missing, as the API opens it)."""
    return await call.console.jobs.get(call.console.nc.jetstream(), replicas=call.console.settings.stream_replicas)


async def visible_job(call: Call) -> Job:
    """The job of the path, if the key may see it; else the 404 of a missing job."""
    stored = await (await job_store(call)).get(call.path("job"))
    if stored is None or (not call.viewer.is_operator and stored.job.tenant != call.viewer.tenant):
        raise not_found("No such job.")
    return stored.job


def percent(job: Job) -> int | None:
    """Done (failed included) as a whole percentage of the total, once the total is known."""
    total = job.progress.total
    if total is None:
        return None
    return 100 if total == 0 else min(100, (job.progress.done + job.progress.failed) * 100 // total)


async def job_page(call: Call) -> web.StreamResponse:
    """GET /console/jobs/{job}."""
    job = await visible_job(call)
    return call.render(
        "job.html",
        title=f"Job {job.id}",
        job=job,
        public=job.public(),
        percent=percent(job),
        notice=NOTICES.get(call.request.query.get("notice", "")),
        can_cancel=call.viewer.has("connector.operation.invoke") and not job.finished,
    )


async def job_progress(call: Call) -> web.StreamResponse:
    """GET /console/jobs/{job}/progress: the progress block alone, which the page's script refreshes."""
    job = await visible_job(call)
    return call.render("job_fragment.html", job=job, public=job.public(), percent=percent(job))


async def cancel_job(call: Call) -> web.StreamResponse:
    """POST /console/jobs/{job}/cancel: ask the job to stop (a pending one at once), audited."""
    job = await visible_job(call)
    canceled = await (await job_store(call)).request_cancel(job.id)
    if canceled is None:
        raise not_found("No such job.")
    await call.console.plane.audit.record_by(
        call.actor, job.tenant, "job_cancel", f"job/{job.id}", "requested", {"kind": job.kind}
    )
    notice = "already_finished" if job.finished else "cancel_requested"
    return redirect(f"/console/jobs/{job.id}?notice={notice}")
