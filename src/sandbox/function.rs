//! The function as it runs on this machine: its code (the zip `deploy` uploaded, downloaded and
//! unpacked once), the environment Lambda gives it, its identity (the execution role, assumed), and
//! its log (a file). Running it is the sandbox's job.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;

use super::emulation::Runner;
use super::{FunctionSpec, INIT_TIMEOUT, LogSink};
use crate::aws::{Clients, SERVICE_IDS, endpoint_variable};
use crate::error::Error;

/// The deployed function, ready to run on this machine.
pub struct Prepared {
    /// How it runs: code, environment, role, limits, log.
    pub spec: FunctionSpec,
    /// Its execution role's ARN (the records' invokeIdentityArn).
    pub role_arn: String,
    /// The role, assumed: its credentials, for the function and for what Lambda does as it.
    pub role: SharedCredentialsProvider,
    /// Set when it runs under emulation (another architecture): says so, for the summary.
    pub emulated: Option<String>,
}

/// Makes the deployed `function` (its code at s3://`code`.0/`code`.1) ready to run here: assumes
/// its role, unpacks its code under `dir`, checks its bootstrap is of the architecture the
/// function declares (and can run here, natively or emulated), and gives it Lambda's
/// environment, its memory and timeout, and `log`.
///
/// The declared architecture is the stack's `Architecture` parameter when it has one (the
/// template's `Architectures` is that parameter, so in AWS the two agree; moto's Lambda takes no
/// `Architectures` from CloudFormation and would say x86_64), else the function's own.
pub async fn prepare(
    clients: &Clients,
    function: &GetFunctionConfigurationOutput,
    stack_arch: Option<&str>,
    code: (&str, &str),
    dir: &Path,
    log: LogSink,
) -> Result<Prepared, Error> {
    super::here()?;
    let role_arn = function.role().unwrap_or_default().to_string();
    let role = assume_role(clients, &role_arn, function.function_name().unwrap_or_default()).await?;
    let bootstrap = unpack_code(clients, code.0, code.1, dir).await?;
    let declared = stack_arch.unwrap_or_else(|| function.architectures().first().map_or("x86_64", |a| a.as_str()));
    check_architecture(function, declared, &bootstrap)?;
    let emulated = Runner::for_bootstrap(&bootstrap)?.describe();
    let task_root = bootstrap.parent().map(Path::to_path_buf).unwrap_or_default();
    let spec = FunctionSpec {
        env: environment(clients, function, &task_root),
        task_root,
        bootstrap,
        credentials: Some(role.clone()),
        memory_mb: Some(function.memory_size().unwrap_or(128).max(128) as u64),
        function_arn: function.function_arn().unwrap_or_default().to_string(),
        timeout: std::time::Duration::from_secs(function.timeout().unwrap_or(3).max(1) as u64),
        init_timeout: INIT_TIMEOUT,
        log,
        starts: std::sync::atomic::AtomicU64::new(0),
    };
    Ok(Prepared { spec, role_arn, role, emulated })
}

/// The bootstrap must be an executable of the architecture the function declares: Lambda starts
/// an arm64 function on Graviton, and another executable fails there at init
/// (Runtime.InvalidEntrypoint). A bootstrap that is no ELF (a script) is left to run as it is.
fn check_architecture(
    function: &GetFunctionConfigurationOutput,
    declared: &str,
    bootstrap: &Path,
) -> Result<(), Error> {
    let mut header = [0u8; 64];
    let read = std::fs::File::open(bootstrap).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    match read.ok().and_then(|n| crate::elf::lambda_arch(&header[..n]).ok()) {
        Some(arch) if arch.as_str() != declared => Err(Error::failed(
            format!(
                "function {} is declared {declared}, but its bootstrap is an {} executable: Lambda would fail at init (Runtime.InvalidEntrypoint)",
                function.function_name().unwrap_or_default(),
                arch.as_str()
            ),
            format!("deploy again with --arch {}, or a bootstrap built for {declared}", arch.as_str()),
        )),
        _ => Ok(()),
    }
}

/// The function's log in its state directory.
pub const LOG_FILE: &str = "function.log";

/// How long the role's credentials last; an environment is replaced before they run out.
const ROLE_SESSION: std::time::Duration = std::time::Duration::from_secs(3600);

/// The function's log: a file that gets every line the function writes and the platform's START,
/// END and REPORT lines, each after the time it was written (`2026-11-26T09:30:00.250Z line`, as
/// CloudWatch Logs keeps a timestamp with each event), and a sink that writes them there and hands
/// each line to `also` (a command reading the function's metrics lines).
pub fn log_sink(dir: &Path, also: impl Fn(&str) + Send + Sync + 'static) -> Result<(PathBuf, LogSink), Error> {
    let path = dir.join(LOG_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    let file = Mutex::new(file);
    let sink = Arc::new(move |line: &str| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let now = crate::tweet::iso_millis(now.as_secs_f64());
        let _ = writeln!(file.lock().unwrap_or_else(|p| p.into_inner()), "{now} {line}");
        also(line);
    });
    Ok((path, sink))
}

/// Downloads the function's zip (the stack's CodeBucket/CodeKey) once and unpacks it whole, as
/// Lambda unpacks it into the code directory (`bootstrap` and `schema.json`, modes kept); returns
/// the path of `bootstrap`.
pub async fn unpack_code(clients: &Clients, bucket: &str, key: &str, dir: &Path) -> Result<PathBuf, Error> {
    let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let root = dir.join("code").join(name);
    let bootstrap = root.join("bootstrap");
    if bootstrap.is_file() {
        return Ok(bootstrap);
    }
    let location = format!("s3://{bucket}/{key}");
    let object = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| Error::aws("GetObject", &location, e))?;
    let zip = object
        .body
        .collect()
        .await
        .map_err(|e| Error::failed(format!("reading {location}: {e}"), "run `stream local` again"))?
        .into_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| {
        Error::failed(format!("{location} is not a zip: {e}"), "deploy again to upload the function's code")
    })?;
    if archive.index_for_name("bootstrap").is_none() {
        return Err(Error::failed(
            format!("{location} holds no `bootstrap`"),
            "deploy again: a provided.al2023 zip needs a bootstrap",
        ));
    }
    // Unpacked beside and renamed into place: a run stopped halfway leaves no half-made code.
    let tmp = dir.join("code").join(format!(".unpack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| Error::failed(format!("{location}: {e}"), "deploy again"))?;
        // Entries that would land outside the code directory (`../x`, `/x`) are not unpacked.
        let Some(rel) = entry.enclosed_name() else { continue };
        let path = tmp.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display().to_string(), e))?;
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| Error::io(&location, e))?;
        use std::os::unix::fs::OpenOptionsExt;
        let mode = entry.unix_mode().map_or(0o644, |m| m & 0o777);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        f.write_all(&data).map_err(|e| Error::io(path.display().to_string(), e))?;
    }
    std::fs::create_dir_all(dir.join("code")).map_err(|e| Error::io(dir.display().to_string(), e))?;
    if let Err(e) = std::fs::rename(&tmp, &root) {
        // Another run unpacked the same code meanwhile: theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
        if !bootstrap.is_file() {
            return Err(Error::io(root.display().to_string(), e));
        }
    }
    Ok(bootstrap)
}

/// Lambda's environment for the function (provided.al2023): the reserved variables, the runtime's,
/// and the function's own; the role's credentials are added per process (`runtime`). Nothing of
/// this shell leaks in, except where AWS is: each service's endpoint as the caller resolved it (the
/// emulator's, locally; none at all against AWS itself).
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>
pub fn environment(
    clients: &Clients,
    function: &GetFunctionConfigurationOutput,
    task_root: &Path,
) -> Vec<(String, String)> {
    let name = function.function_name().unwrap_or_default().to_string();
    let log_group = function
        .logging_config()
        .and_then(|l| l.log_group())
        .map(str::to_string)
        .unwrap_or_else(|| format!("/aws/lambda/{name}"));
    let today = chrono::Utc::now().format("%Y/%m/%d");
    let task_root = task_root.display().to_string();
    let runtime_dir = "/var/runtime";
    let mut env: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), function.memory_size().unwrap_or(128).to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), function.version().unwrap_or("$LATEST").to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), log_group),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), format!("{today}/[$LATEST]{}", uuid::Uuid::new_v4().simple())),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_REGION".into(), clients.region.clone()),
        ("AWS_DEFAULT_REGION".into(), clients.region.clone()),
        ("_HANDLER".into(), function.handler().unwrap_or("bootstrap").to_string()),
        ("LAMBDA_TASK_ROOT".into(), task_root.clone()),
        ("LAMBDA_RUNTIME_DIR".into(), runtime_dir.into()),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        // X-Ray's, which Lambda sets whether or not tracing is active: the SDKs' context-missing
        // strategy and the daemon's address (documented), and the address and port apart (set
        // beside them). Nothing listens there on this machine: segments go nowhere, as untraced.
        ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
        ("AWS_XRAY_DAEMON_ADDRESS".into(), "169.254.79.129:2000".into()),
        ("_AWS_XRAY_DAEMON_ADDRESS".into(), "169.254.79.129".into()),
        ("_AWS_XRAY_DAEMON_PORT".into(), "2000".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH".into(),
            format!(
                "/var/lang/lib:/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{task_root}:{task_root}/lib:/opt/lib"
            ),
        ),
    ];
    if let Some(vars) = function.environment().and_then(|e| e.variables()) {
        let mut vars: Vec<_> = vars.iter().collect();
        vars.sort();
        env.extend(vars.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // Each service where the caller's own calls go: the function resolves exactly as `stream` did.
    for service in SERVICE_IDS {
        if let Some(url) = clients.endpoint(service) {
            env.push((endpoint_variable(service), url));
        }
    }
    env
}

/// The function's execution role, assumed through STS as Lambda assumes it, as a provider of its
/// temporary credentials (each process gets fresh ones). Failing to assume it is an error, never a
/// silent fall back to the caller's own credentials: those would pass where the role would not.
pub async fn assume_role(
    clients: &Clients,
    role_arn: &str,
    function: &str,
) -> Result<SharedCredentialsProvider, Error> {
    // RoleSessionName: up to 64 of [\w+=,.@-].
    let session: String = format!("stream-local-{function}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
        .take(64)
        .collect();
    let provider = AssumeRoleProvider::builder(role_arn)
        .session_name(session)
        .session_length(ROLE_SESSION)
        .configure(&clients.config)
        .build()
        .await;
    let provider = SharedCredentialsProvider::new(provider);
    provider.provide_credentials().await.map_err(|e| {
        Error::config(
            format!(
                "cannot run as the function's role {role_arn}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ),
            "your credentials need sts:AssumeRole on the role, and the role must trust this account \
             (`stream deploy` with this version sets that up)",
        )
    })?;
    Ok(provider)
}
