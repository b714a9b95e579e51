"""The long-running worker: args -> settings -> bootstrap() -> run the runners of the chosen roles.

`triage worker` (also installed as `triage-worker`; `python run_worker.py` in a checkout) runs
one or more roles, so that on PostgreSQL the work can be spread over several workers:

  poll    one IMAP poller per configured account ([imap], [imap_accounts.*]) and the maildir
          spool (ingest.spool_maildir)
  send    the outbox sender (smtp.host)
  remind  the reminder run, the weekly digests and the retention run
  route   routing suggestions for new tickets and retraining (routing.teams_file)

SIGTERM and SIGINT stop it cleanly: the batch in progress is finished and committed, connections
are logged out. While it runs it serves /healthz, /readyz and Prometheus /metrics on
`worker.listen` (triage.observe). Its log lines carry its id (`worker`) and the runner's name.

A failure is one line on stderr that names the cause and the fix (a runner's failure in a
long run is logged the same way, and the runner retries with backoff); exit status 2 means the
configuration needs fixing, 1 that a run failed.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import structlog

from triage.bootstrap import App, bootstrap, owner_only_files
from triage.config import ConfigError, Settings, listen_address, load_settings
from triage.coordination.single_worker import AnotherWorker
from triage.coordination.workers import coordinate
from triage.failures import show_traceback, stopped_by
from triage.logging import bind_worker, configure_logging, worker_name
from triage.observe.metrics import expect_mailbox
from triage.runners.base import Runner
from triage.runners.poll import PollRunner
from triage.runners.spool import SPOOL_ACCOUNT, SpoolRunner
from triage.runners.supervisor import Supervisor, run_until_signalled
from triage.store.schema import SchemaError
from triage.terminal import escape

log = structlog.get_logger(__name__)

PROG = "triage-worker"
ROLES = ("poll", "send", "route", "remind")  # the order they run in: mail in and out, routed, then reminded


@dataclass
class RoleRunners:
    """The runners one role built from the settings, or why it has none."""

    role: str
    runners: list[Runner] = field(default_factory=list)
    idle: str = ""  # what to configure for the role to have work


def poll_role(app: App) -> RoleRunners:
    settings = app.settings
    runners: list[Runner] = []
    for account in settings.imap_all:
        runners.append(PollRunner(account, app.ingestor()))
        for folder in account.folders:
            expect_mailbox(account.name, folder)
    if settings.ingest.spool_maildir:
        maildir = Path(settings.ingest.spool_maildir)
        runners.append(SpoolRunner(app.ingestor(), maildir, settings.ingest.poll_seconds))
        expect_mailbox(SPOOL_ACCOUNT, str(maildir))
    return RoleRunners("poll", runners, "no mailbox: set imap.host (TRIAGE_IMAP_HOST) and imap.user, "
                                        "[imap_accounts.NAME], or ingest.spool_maildir")


def send_role(app: App) -> RoleRunners:
    from triage.runners.outbound import outbound_runners

    return RoleRunners("send", outbound_runners(app),
                       "smtp.host is not set (TRIAGE_SMTP_HOST): mail is queued in the outbox, not sent")


def remind_role(app: App) -> RoleRunners:
    # imported when the role is chosen: the digests' topics need scipy, a second of start-up a poller need not pay
    from triage.runners.digest import digest_runners
    from triage.runners.remind import remind_runners
    from triage.runners.retention import retention_runners

    runners = remind_runners(app) + digest_runners(app) + retention_runners(app)
    return RoleRunners("remind", runners, "reminders.enabled and digest.enabled are false and "
                                          "privacy.retention_months is 0")


def route_role(app: App) -> RoleRunners:
    """Suggest and retrain, when the teams file is there (otherwise mail still flows, unrouted)."""
    from triage.routing.errors import RoutingError
    from triage.runners.routing import RetrainRunner, SuggestRunner

    try:
        router = app.router()
    except RoutingError as exc:
        return RoleRunners("route", [], f"routing off: {exc}")
    return RoleRunners("route", [SuggestRunner(router), RetrainRunner(router, app.settings.routing)])


BUILDERS: dict[str, Callable[[App], RoleRunners]] = {
    "poll": poll_role, "send": send_role, "remind": remind_role, "route": route_role,
}


def mail_runners(app: App) -> list[Runner]:
    """The runners that move mail, each only where configured (the poll and send roles)."""
    app.wiring.renderer.warm()  # a long run compiles its mail templates once, at start
    return poll_role(app).runners + send_role(app).runners


def routing_runners(app: App) -> list[Runner]:
    """The route role's runners (none when routing is off)."""
    return route_role(app).runners


def parse_roles(values: Sequence[str]) -> tuple[list[str], bool]:
    """The roles named by `--role` values (repeated or comma-separated; none or "all": every role),
    in the order of ROLES, and whether they were chosen one by one."""
    named = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(named - {*ROLES, "all"})
    if unknown:
        raise click.BadParameter(f"unknown role {', '.join(unknown)}; choose from {', '.join(ROLES)} or all",
                                 param_hint="--role")
    if not named or "all" in named:
        return list(ROLES), False
    return [role for role in ROLES if role in named], True


class _Failed(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def run_worker(*, config: str | None, roles: Sequence[str], chosen: bool, once: bool, listen: str | None,
               say: Callable[[str], None]) -> int:
    """The worker's whole life; returns its exit status (0 ok, 1 a run failed, 2 fix the configuration)."""
    owner_only_files()
    try:
        settings = load_settings(config)
        configure_logging(settings.log)
        bind_worker(worker_name(settings.worker.id))
        listen_at = settings.worker.listen if listen is None else listen.strip()
        if listen_at:
            try:
                listen_address(listen_at)
            except ValueError as exc:
                raise ConfigError(f"--listen: {exc}") from None
        app = bootstrap(settings)
    except (ConfigError, SchemaError) as exc:
        say(str(exc))
        return 2
    except Exception as exc:  # the database unreachable, locked or full; a disk error; a bug
        if show_traceback():
            raise
        say(stopped_by(exc))
        return 1
    try:
        runners = _runners(app, roles, chosen)
        try:  # leases on PostgreSQL; on SQLite, refused if a worker already runs
            coordination = coordinate(app.engine, app.sessions, settings.database.url, settings.worker.lease_seconds,
                                      runners, worker=f"{worker_name(settings.worker.id)}:{secrets.token_hex(4)}")
        except AnotherWorker as exc:
            raise _Failed(str(exc), 2) from None
        try:
            if once:
                return _run_once(runners, say)
            return _run_long(app, roles, runners, listen_at)
        finally:
            coordination.release()
    except _Failed as exc:
        say(str(exc))
        return exc.status
    except Exception as exc:  # while building the runners (the routing model, the teams file)
        if show_traceback():
            raise
        say(stopped_by(exc))
        return 1
    finally:
        app.close()


def _runners(app: App, roles: Sequence[str], chosen: bool) -> list[Runner]:
    """The chosen roles' runners. A role chosen by name that has nothing to do is a configuration
    error; in the default (every role) an idle role is logged, and the worker refuses only when it
    would move no mail at all, as it always has."""
    app.wiring.renderer.warm()  # a long run compiles its mail templates once, at start
    built = [BUILDERS[role](app) for role in roles]
    idle = [r for r in built if not r.runners]
    if chosen and idle:
        raise _Failed("\n".join(f"role {r.role} has nothing to do: {r.idle}" for r in idle), 2)
    for role in idle:
        log.info("worker.role_idle", role=role.role, reason=role.idle)
    if not chosen and not any(r.runners for r in built if r.role in ("poll", "send")):
        raise _Failed("nothing to run; set imap.host (TRIAGE_IMAP_HOST) or ingest.spool_maildir", 2)
    log.info("worker.roles", roles=[r.role for r in built if r.runners],
             runners=[runner.name for r in built for runner in r.runners])
    return [runner for r in built for runner in r.runners]


def _run_once(runners: Sequence[Runner], say: Callable[[str], None]) -> int:
    status = 0
    for runner in runners:
        try:
            with structlog.contextvars.bound_contextvars(runner=runner.name):
                runner.run(once=True)
        except Exception as exc:  # noqa: BLE001 - reported; the exit status says so
            say(f"{runner.name}: {stopped_by(exc)}")
            status = 1
    return status


def _run_long(app: App, roles: Sequence[str], runners: Sequence[Runner], listen_at: str) -> int:
    if not listen_at:
        return 0 if run_until_signalled(runners) else 1
    from triage.observe.http import HealthChecks, HealthServer, health_app
    from triage.observe.metrics import DeskCollector, worker_registry
    from triage.observe.readings import DeskProbe, model_version_on_disk

    settings: Settings = app.settings
    mailboxes = [(account.name, folder) for account in settings.imap_all for folder in account.folders]
    probe = DeskProbe(settings.database.url, timeout=settings.worker.scrape_timeout_seconds, mailboxes=mailboxes)
    checks = HealthChecks(probe.not_ready)
    supervisors: list[Supervisor] = []

    def alive(name: str) -> bool:
        return not supervisors or name not in supervisors[0].dead()

    desk = DeskCollector(probe, lambda: model_version_on_disk(settings.routing.model_path))
    registry = worker_registry(worker=worker_name(settings.worker.id), roles=roles, runners=runners,
                               alive=alive, desk=desk)
    host, port = listen_address(listen_at)
    try:
        server = HealthServer(host, port, health_app(checks, registry))
    except OSError as exc:
        probe.close()
        raise _Failed(f"cannot serve the health endpoint on {listen_at} ({exc.strerror or exc}): give each "
                      "worker its own worker.listen (--listen, TRIAGE_WORKER_LISTEN), or '' to turn it off", 2) \
            from None

    def started(supervisor: Supervisor) -> None:
        supervisors.append(supervisor)
        checks.dead = supervisor.dead
        server.start()

    try:
        return 0 if run_until_signalled(runners, started=started) else 1
    finally:
        server.stop()
        probe.close()


ROLE_HELP = """Run the worker's runners until SIGTERM or SIGINT (or once, with --once).

\b
Roles (--role, repeatable or comma-separated; default: all):
  poll    IMAP pollers ([imap], [imap_accounts.*]) and the maildir spool (ingest.spool_maildir)
  send    the outbox sender (smtp.host)
  remind  reminders, weekly digests and the retention run
  route   routing suggestions and retraining
A role named here that has nothing configured stops the worker with exit status 2 and says what
to set; with all, such a role is skipped (logged), and a worker that would move no mail stops.

\b
While running (not with --once) it serves, on worker.listen (default 127.0.0.1:9464; --listen
overrides):
  /healthz  200 while every runner's thread runs, else 503 naming the dead runner
  /readyz   200 when the database answers and its schema is current, else 503 and why
  /metrics  Prometheus metrics (see the README's table)

Exit status: 0 stopped cleanly, 1 a run failed, 2 the configuration needs fixing.
"""


@click.command("worker", help=ROLE_HELP)
@click.option("--config", type=click.Path(dir_okay=False), envvar="TRIAGE_CONFIG",
              help="Path to triage.toml (default: $TRIAGE_CONFIG, then ./triage.toml, then built-in defaults).")
@click.option("--role", "role_values", multiple=True, metavar="ROLE[,ROLE]",
              help="poll, send, remind, route or all (default); repeat or separate by commas.")
@click.option("--once", is_flag=True, help="One pass of every runner of the roles, then exit (for cron).")
@click.option("--listen", metavar="HOST:PORT",
              help="Serve /healthz, /readyz and /metrics here instead of worker.listen ('' : not at all).")
@click.pass_context
def worker_command(ctx: click.Context, config: str | None, role_values: tuple[str, ...], once: bool,
                   listen: str | None) -> None:
    roles, chosen = parse_roles(role_values)
    parent = ctx.parent.obj if ctx.parent is not None else None  # `triage --config X worker`
    config = config or getattr(parent, "config_path", None)
    prog = ctx.find_root().info_name or PROG

    def say(message: str) -> None:
        for line in message.splitlines() or [""]:
            print(escape(f"{prog}: {line}"), file=sys.stderr)

    status = run_worker(config=config, roles=roles, chosen=chosen, once=once, listen=listen, say=say)
    if status:
        ctx.exit(status)


def main(argv: list[str] | None = None) -> int:
    """`triage-worker [OPTIONS]`: the same command as `triage worker`; returns the exit status."""
    try:
        result = worker_command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
