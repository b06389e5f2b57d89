//! Entry point: decide the mode, parse the command line, run one command, print, exit.
#![forbid(unsafe_code)]

use clap::Parser;
use stream::cli::{Cli, Command, SummaryFormat};
use stream::error::{Error, exit};
use stream::{aws, deploy, local, mode, process, produce, replay, scan, shutdown::Shutdown, stack, status, template};

fn main() {
    // Building a runtime fails only when the OS refuses threads or an epoll instance: nothing to recover.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let code = match mode::detect_current() {
        mode::Mode::Lambda => {
            runtime.block_on(process::lambda::run_lambda()).map_or_else(|e| e.report(false), |()| exit::OK)
        }
        mode::Mode::BootstrapOutsideLambda => Error::usage(
            "started as `bootstrap` outside Lambda (AWS_LAMBDA_RUNTIME_API is not set)",
            "run it as `stream --help`, or let `stream local` or Lambda start it",
        )
        .report(false),
        mode::Mode::Cli => {
            let cli = Cli::parse();
            let verbose = cli.global.verbose > 0;
            runtime.block_on(run(cli)).unwrap_or_else(|e| e.report(verbose))
        }
    };
    std::process::exit(code);
}

/// Runs one command; prints its result to stdout and returns the exit code.
async fn run(cli: Cli) -> Result<i32, Error> {
    let g = &cli.global;
    stream::progress::init_cli_logs(g.verbose);
    if let Command::Template = cli.command {
        return print(template::stack_yaml().trim_end(), None);
    }
    stack::validate_name(&g.stack)?;
    let aws_args = aws::AwsArgs::from(g);
    aws_args.validate()?;
    let retry =
        if matches!(cli.command, Command::Produce(_)) { aws::RetryMode::Adaptive } else { aws::RetryMode::Standard };
    // The command's own flags and files first: bad input is named even where AWS is not set up.
    // Each command's `run` relies on these having passed.
    let deploy_params = match &cli.command {
        Command::Deploy(a) => Some(a.validate()?),
        Command::Produce(a) => produce::precheck(a, &g.stack).map(|()| None)?,
        Command::ScanTable(a) => a.validate().map(|()| None)?,
        Command::Local(a) => a.validate().map(|()| None)?,
        _ => None,
    };
    let config = aws::load_config(&aws_args, retry).await;
    aws::check_ready(&config, &aws_args).await?;
    let clients = aws::Clients::new(&config);
    match &cli.command {
        Command::Deploy(a) => {
            let params = deploy_params.unwrap_or_default();
            print(deploy::deploy(a, &params, &g.stack, &clients).await?, None)
        }
        Command::Destroy(a) => print(deploy::destroy(a, &g.stack, &clients).await?, None),
        Command::Status(a) => {
            let out = status::run(&g.stack, &clients).await?;
            print_json_or_text(&out, a.output == SummaryFormat::Json, None)
        }
        Command::Produce(a) => {
            let out = produce::run(a, &g.stack, &clients, Shutdown::on_signals()).await?;
            print_json_or_text(&out, a.output == SummaryFormat::Json, out.problem())
        }
        Command::Local(a) => {
            let out = local::run(a, &g.stack, &clients, Shutdown::on_signals()).await?;
            print_json_or_text(&out, a.output == SummaryFormat::Json, out.problem())
        }
        Command::Replay(a) => {
            let out = replay::run(a, &g.stack, &clients).await?;
            print_json_or_text(&out, a.output == SummaryFormat::Json, out.problem())
        }
        Command::ScanTable(a) => {
            scan::run(a, &g.stack, &clients, &mut std::io::stdout().lock()).await.map(|()| exit::OK)
        }
        Command::Template => unreachable!("handled above"),
    }
}

fn print(out: impl std::fmt::Display, problem: Option<Error>) -> Result<i32, Error> {
    stream::progress::print_stdout(&out.to_string())?;
    problem.map_or(Ok(exit::OK), |p| Ok(p.report(false)))
}

fn print_json_or_text<T: std::fmt::Display + serde::Serialize>(
    out: &T,
    json: bool,
    problem: Option<Error>,
) -> Result<i32, Error> {
    if json { print(serde_json::to_string(out).unwrap_or_default(), problem) } else { print(out, problem) }
}
