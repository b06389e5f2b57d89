//! Entry point: decide the mode, parse the command line, run one command, print, exit.
#![forbid(unsafe_code)]

use stream::cli::{self, Cli, Command};
use stream::error::{Error, exit};
use stream::output::{self, Output};
use stream::schemas::SchemaAction;
use stream::{
    aws, capacity, deploy, local, logs, mode, process, produce, progress, redrive, replay, scan, schema, schemas,
    shutdown::Shutdown, stack, status, tail, template,
};

fn main() {
    let code = match mode::detect_current() {
        mode::Mode::Lambda => {
            // One invocation at a time, its writes concurrent on one thread: no worker threads to
            // start at init, no hand-offs between them.
            runtime(tokio::runtime::Builder::new_current_thread())
                .and_then(|runtime| runtime.block_on(process::lambda::run_lambda()))
                .map_or_else(|e| e.report(false), |()| exit::OK)
        }
        mode::Mode::BootstrapOutsideLambda => Error::usage(
            "started as `bootstrap` outside Lambda (AWS_LAMBDA_RUNTIME_API is not set)",
            "run it as `stream --help`, or let `stream local` or Lambda start it",
        )
        .report(false),
        mode::Mode::Cli => match cli::parse() {
            Ok(cli) => {
                let verbose = cli.global.verbose > 0;
                // `produce` reads and checks records on a thread of its own and keeps one call in
                // flight per shard: its tasks mostly wait on the network, and one thread runs them
                // without hand-offs between pool workers.
                let builder = match cli.command {
                    Command::Produce(_) => tokio::runtime::Builder::new_current_thread(),
                    _ => tokio::runtime::Builder::new_multi_thread(),
                };
                runtime(builder).and_then(|runtime| runtime.block_on(run(cli))).unwrap_or_else(|e| e.report(verbose))
            }
            Err(code) => code,
        },
    };
    std::process::exit(code);
}

/// Builds the runtime. It fails only when the OS refuses a thread or an epoll instance (a process
/// or open-file limit): said in two lines, as any other error, not as a panic.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Error> {
    builder.enable_all().build().map_err(|e| {
        Error::failed(
            format!("cannot start: the system refused a thread or an epoll instance ({e})"),
            "raise the process's limits (ulimit -n for open files, ulimit -u for processes) and run it again",
        )
    })
}

/// Runs the commands that need no AWS at all; `None` for the others.
fn without_aws(command: &Command, format: Output) -> Option<Result<i32, Error>> {
    match command {
        Command::Template => Some(
            match format {
                Output::Json => output::print_stdout(&template::document().to_string()),
                _ => output::print_stdout(template::stack_yaml().trim_end()),
            }
            .map(|()| exit::OK),
        ),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            cli::completions(*shell, &mut script);
            Some(output::print_stdout(String::from_utf8_lossy(&script).trim_end()).map(|()| exit::OK))
        }
        Command::Schema(a) => match &a.action {
            // A schema is checked here, with no AWS call.
            SchemaAction::Check { schema, sample } => Some(
                schemas::check(schema, sample.as_ref()).and_then(|out| finish(command, &out, format, out.problem())),
            ),
            SchemaAction::Show => None,
        },
        _ => None,
    }
}

/// The output format of the command: --output, else AWS_DEFAULT_OUTPUT or the profile's output,
/// else the command's own. A template or a completion script is a file to keep as it is: only
/// --output changes it.
async fn format_of(cli: &Cli) -> Result<Output, Error> {
    let configured = match cli.command {
        Command::Template | Command::Completions { .. } | Command::LiveLineCheck => None,
        _ => aws::configured_output(cli.global.profile.as_deref()).await,
    };
    output::choose(cli.command.name(), cli.command.formats(), cli.global.output, configured.as_ref())
}

/// Runs one command; prints its result to stdout and returns the exit code.
async fn run(cli: Cli) -> Result<i32, Error> {
    let g = &cli.global;
    progress::init_cli_logs(g.verbose);
    if let Command::LiveLineCheck = cli.command {
        progress::live_line_check().await;
        return Ok(exit::OK);
    }
    let format = format_of(&cli).await?;
    if let Some(done) = without_aws(&cli.command, format) {
        return done;
    }
    stack::validate_name(&g.stack)?;
    let aws_args = aws::AwsArgs::from(g);
    aws_args.validate()?;
    if let Some(warning) = aws::user_retry(aws_args.profile.as_deref()).await?.warning() {
        progress::status(warning);
    }
    // The command's own files and profiles first: bad input is named even where AWS is not set up.
    match &cli.command {
        Command::Produce(a) => produce::precheck(a, &g.stack)?,
        Command::Deploy(a) => {
            a.params.values()?;
            deploy::params::tags_after(None, &a.tags)?;
            if let Some(s) = &a.schema {
                schema::load(s)?;
            }
        }
        _ => {}
    }
    let retry =
        if matches!(cli.command, Command::Produce(_)) { aws::RetryMode::Adaptive } else { aws::RetryMode::Standard };
    let config = aws::load_config(&aws_args, retry).await;
    if let Command::Plan(a) = &cli.command {
        // A plan needs no AWS: without credentials it prices the template's defaults.
        let ready = aws::check_ready(&config, &aws_args).await.is_ok();
        let clients = ready.then(|| aws::Clients::new(&config));
        return finish(&cli.command, &capacity::run(a, &g.stack, clients.as_ref()).await?, format, None);
    }
    if let Command::Logs(a) = &cli.command
        && a.local
    {
        // The local log is a file: no AWS, only the region and stack that name its place.
        let region = config.region().map_or_else(|| aws::DEFAULT_REGION.to_string(), |r| r.to_string());
        logs::run(a, format, &g.stack, &region, None, Shutdown::on_signals()).await?;
        return Ok(exit::OK);
    }
    aws::check_ready(&config, &aws_args).await?;
    let clients = aws::Clients::new(&config);
    with_aws(&cli.command, format, g.stack.as_str(), &clients).await
}

/// Runs one command that calls AWS, with the clients of the user's configuration.
async fn with_aws(command: &Command, format: Output, stack: &str, clients: &aws::Clients) -> Result<i32, Error> {
    match command {
        Command::Deploy(a) => finish(command, &deploy::deploy(a, stack, clients).await?, format, None),
        Command::Destroy(a) => finish(command, &deploy::destroy(a, stack, clients).await?, format, None),
        Command::Status(_) => finish(command, &status::run(stack, clients).await?, format, None),
        Command::Produce(a) => {
            let out = produce::run(a, stack, clients, Shutdown::on_signals()).await?;
            finish(command, &out, format, out.problem())
        }
        Command::Local(a) => {
            let out = local::run(a, stack, clients, Shutdown::on_signals()).await?;
            finish(command, &out, format, out.problem())
        }
        Command::Replay(a) => {
            let out = replay::run(a, stack, clients).await?;
            finish(command, &out, format, out.problem())
        }
        Command::Logs(a) => {
            logs::run(a, format, stack, &clients.region, Some(clients), Shutdown::on_signals()).await.map(|_| exit::OK)
        }
        Command::Tail(a) => tail::run(a, format, stack, clients, Shutdown::on_signals()).await.map(|_| exit::OK),
        Command::Redrive(a) => {
            let out = redrive::run(a, stack, clients).await?;
            finish(command, &out, format, out.problem())
        }
        Command::ScanTable(a) => {
            let out = &mut std::io::stdout().lock();
            scan::run(a, format, stack, clients, out, Shutdown::on_signals()).await.map(|()| exit::OK)
        }
        Command::Schema(_) => {
            let (text, origin) = schemas::show(stack, clients).await?;
            progress::status(origin);
            schemas::print_schema(&text, format)?;
            Ok(exit::OK)
        }
        Command::Template | Command::Plan(_) | Command::Completions { .. } | Command::LiveLineCheck => Ok(exit::OK),
    }
}

/// Prints a command's result; a problem it reports (records given up, Ctrl-C) decides the exit code.
fn finish<T: std::fmt::Display + serde::Serialize>(
    command: &Command,
    out: &T,
    format: Output,
    problem: Option<Error>,
) -> Result<i32, Error> {
    output::print(command.name(), out, format)?;
    Ok(problem.map_or(exit::OK, |p| p.report(false)))
}
