"""``autocompress report RUN``: the Pareto front of a run as a table, HTML page, JSON or CSV."""

from __future__ import annotations

from pathlib import Path

import click

from autocompress.cli.calibration_option import calibration_options
from autocompress.cli.console import print_json, stderr, stdout
from autocompress.cli.metric_options import budget_options

_USE_DEFAULT_PATH = "\0default"


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--chip", help="Report on this chip (default: the run's chip); other chips are re-scored."
)
@budget_options("report")
@click.option(
    "--html",
    "html_path",
    is_flag=False,
    flag_value=_USE_DEFAULT_PATH,
    default=None,
    metavar="[PATH]",
    help="Write the self-contained HTML report (default RUN/report.html).",
)
@click.option(
    "--trial",
    type=int,
    help="Trial whose per-layer picture the HTML shows (default: most accurate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print every trial as CSV.")
@click.option("--all", "all_trials", is_flag=True, help="Show every trial, not only the front.")
@calibration_options
def command(
    run_dir: Path,
    chip: str | None,
    html_path: str | None,
    trial: int | None,
    as_json: bool,
    as_csv: bool,
    all_trials: bool,
    **budgets: float | None,
) -> None:
    """Show the Pareto front of RUN (a run directory, finished or still running).

    \b
    Examples:
      autocompress report runs/NAME
      autocompress report runs/NAME --chip nvidia/orin-nano
      autocompress report runs/NAME --latency-ms 3 --memory-kb 2048
      autocompress report runs/NAME --html          # writes runs/NAME/report.html
      autocompress report runs/NAME --csv > trials.csv
    """
    from autocompress.core.errors import ConfigError
    from autocompress.report.api import load_report

    if as_json and as_csv:
        raise ConfigError("--json and --csv are exclusive: pick one output format")
    report = load_report(
        run_dir,
        chip=chip,
        budget_overrides=budgets,
    )
    if trial is not None:
        report.row(trial)  # unknown trial: a clear error before writing anything
    written = None
    if html_path is not None:
        from autocompress.report.html_page import write_html

        target = None if html_path == _USE_DEFAULT_PATH else Path(html_path)
        written = write_html(report, target, trial=trial)
    if as_json:
        data = report.to_dict()
        if written is not None:
            data["html"] = str(written)
        print_json(data)
        return
    if as_csv:
        from autocompress.report.table import report_csv

        click.echo(report_csv(report), nl=False)
        return
    from autocompress.report.table import front_table

    stdout.print(front_table(report, all_trials=all_trials))
    counts = report.counts()
    status = "in progress" if report.run.in_progress else "finished"
    planned = f"/{report.run.trials_planned}" if report.run.trials_planned is not None else ""
    budget = ", ".join(f"{k} {v:.6g}" for k, v in report.budget.active().items()) or "none"
    stdout.print(
        f"{counts['trials']}{planned} trials ({status}): {counts['complete']} trained, "
        f"{counts['infeasible']} over budget, {counts['failed']} failed; front {counts['front']} "
        "of "
        f"{counts['feasible']} feasible · budget: {budget}"
    )
    not_deployable = [row for row in report.rows if row.state == "infeasible" and row.error]
    if not_deployable:
        stdout.print(f"{len(not_deployable)} trial(s) not deployable (never trained):")
        for row in not_deployable[:10]:
            stdout.print(f"  trial {row.number}: {row.error}", markup=False)
    if written is not None:
        stderr.print(f"wrote {written}")
