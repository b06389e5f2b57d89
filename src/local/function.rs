//! The function as `stream local` runs it: its code (the zip `deploy` uploaded, downloaded and
//! unpacked once), the environment Lambda gives it, its identity (the execution role, assumed), and
//! its log (a file, whose metrics lines also feed the run's counts). Running it is `runtime`'s job.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::runtime::LogSink;
use super::stats::Stats;
use crate::aws::{Clients, SERVICE_IDS, endpoint_variable};
use crate::error::Error;

/// How long the role's credentials last; an environment is replaced before they run out.
const ROLE_SESSION: std::time::Duration = std::time::Duration::from_secs(3600);

/// The function's log: a file that gets every line the function writes, and a sink that writes them.
pub fn log_sink(dir: &Path, stats: Arc<Stats>) -> Result<(PathBuf, LogSink), Error> {
    let path = dir.join("function.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    // The function's log lines go to the file; its metrics lines also feed the counters.
    let file = Mutex::new(file);
    let sink = Arc::new(move |line: &str| {
        let _ = writeln!(file.lock().unwrap_or_else(|p| p.into_inner()), "{line}");
        stats.metrics_line(line);
    });
    Ok((path, sink))
}

/// Downloads the function's zip (the stack's CodeBucket/CodeKey) once and unpacks `bootstrap`.
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
    let mut file = archive.by_name("bootstrap").map_err(|_| {
        Error::failed(
            format!("{location} holds no `bootstrap`"),
            "deploy again: a provided.al2023 zip needs a bootstrap",
        )
    })?;
    let mut data = Vec::with_capacity(file.size() as usize);
    std::io::Read::read_to_end(&mut file, &mut data).map_err(|e| Error::io(&location, e))?;
    std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display().to_string(), e))?;
    let tmp = root.join("bootstrap.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)
            .map_err(|e| Error::io(tmp.display().to_string(), e))?;
        f.write_all(&data).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    }
    std::fs::rename(&tmp, &bootstrap).map_err(|e| Error::io(bootstrap.display().to_string(), e))?;
    Ok(bootstrap)
}

/// Lambda's environment for the function (provided.al2023): the reserved variables, the runtime's,
/// and the function's own; the role's credentials are added per process (`runtime`). Nothing of
/// this shell leaks in, except where AWS is: each service's endpoint as the caller resolved it (the
/// emulator's, locally; none at all against AWS itself).
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>
pub fn environment(
    clients: &Clients,
    function: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
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
