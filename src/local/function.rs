//! The function as `stream local` runs it: its code (the zip `deploy` uploaded, downloaded and
//! unpacked once), the environment Lambda gives it, and its log (a file, whose metrics lines also
//! feed the run's counts). Running it is `runtime`'s job.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::runtime::LogSink;
use super::stats::Stats;
use crate::aws::Clients;
use crate::error::{CREDENTIALS_HINT, Error};

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

/// Lambda's environment for the function: its own variables, the runtime's, and credentials.
/// Locally the function signs with the caller's credentials (in Lambda: its role's), and talks to
/// the same endpoint as `stream local` (the emulator, when there is one).
pub async fn environment(
    clients: &Clients,
    function: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
    dir: &Path,
) -> Result<Vec<(String, String)>, Error> {
    use aws_credential_types::provider::ProvideCredentials;
    let name = function.function_name().unwrap_or_default().to_string();
    let log_group = function
        .logging_config()
        .and_then(|l| l.log_group())
        .map(str::to_string)
        .unwrap_or_else(|| format!("/aws/lambda/{name}"));
    let today = chrono::Utc::now().format("%Y/%m/%d");
    let mut env: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), function.memory_size().unwrap_or(128).to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), function.version().unwrap_or("$LATEST").to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), log_group),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), format!("{today}/[$LATEST]{:032x}", rand::random::<u128>())),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_REGION".into(), clients.region.clone()),
        ("AWS_DEFAULT_REGION".into(), clients.region.clone()),
        ("_HANDLER".into(), function.handler().unwrap_or("bootstrap").to_string()),
        ("LAMBDA_TASK_ROOT".into(), dir.display().to_string()),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
    ];
    if let Some(vars) = function.environment().and_then(|e| e.variables()) {
        let mut vars: Vec<_> = vars.iter().collect();
        vars.sort();
        env.extend(vars.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let creds = match clients.config.credentials_provider() {
        Some(p) => p
            .provide_credentials()
            .await
            .map_err(|e| Error::config(format!("no credentials to hand to the function: {e}"), CREDENTIALS_HINT))?,
        None => return Err(Error::config("no credentials to hand to the function", CREDENTIALS_HINT)),
    };
    env.push(("AWS_ACCESS_KEY_ID".into(), creds.access_key_id().to_string()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), creds.secret_access_key().to_string()));
    if let Some(token) = creds.session_token() {
        env.push(("AWS_SESSION_TOKEN".into(), token.to_string()));
    }
    if let Some(url) = &clients.endpoint_url {
        env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
    }
    Ok(env)
}
