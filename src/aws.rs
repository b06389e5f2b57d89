//! One `SdkConfig` per process from the AWS CLI's flags and the standard chain, and the service
//! clients built once from it. The only place that knows about endpoints, TLS, retries and timeouts.
//! Endpoints resolve as in the AWS CLI v2: `--endpoint-url` beats everything; otherwise aws-config
//! reads `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then the profile's `services`
//! section and `endpoint_url`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` turns them off.

use std::time::Duration;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::error::{CREDENTIALS_HINT, Error};

/// The environment variable of the global endpoint; `<it>_<SERVICE>` names a service's.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

/// Service ids as the SDKs spell them (`AWS_ENDPOINT_URL_<ID upper-cased, spaces as _>`), for the
/// services `stream` and its function talk to.
pub const SERVICE_IDS: [&str; 10] =
    ["CloudFormation", "Kinesis", "DynamoDB", "S3", "IAM", "STS", "Lambda", "CloudWatch", "CloudWatch Logs", "SQS"];

/// The environment variable that sets `service_id`'s endpoint.
pub fn endpoint_variable(service_id: &str) -> String {
    format!("{ENDPOINT_ENV}_{}", service_id.to_uppercase().replace(' ', "_"))
}

/// The region commands that need no AWS (`plan` without a stack, `logs --local`) name things
/// after when none is configured. Commands that call AWS refuse instead, as the AWS CLI does.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The AWS flags of the CLI (`--region`, `--profile`, `--endpoint-url`).
#[derive(Debug, Clone, Default)]
pub struct AwsArgs {
    /// `--region`
    pub region: Option<String>,
    /// `--profile`: credentials and region come from this profile, even when env credentials exist.
    pub profile: Option<String>,
    /// `--endpoint-url`: every service of this call goes there. (The environment's and the
    /// profile's endpoints are aws-config's to read, per service.)
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// Checks the flags' form before any call.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(region) = &self.region
            && !is_region_name(region)
        {
            return Err(invalid_region(region));
        }
        let is_url = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if let Some(url) = &self.endpoint_url
            && !is_url(url)
        {
            return Err(Error::usage(
                format!("invalid endpoint URL \"{url}\""),
                "give a URL with a scheme, e.g. --endpoint-url http://127.0.0.1:4566",
            ));
        }
        // The SDK would take these as they are and fail far from here.
        for (name, url) in std::env::vars().filter(|(k, _)| k.starts_with(ENDPOINT_ENV)) {
            if !url.is_empty() && !is_url(&url) {
                return Err(Error::usage(
                    format!("invalid endpoint URL \"{url}\" in {name}"),
                    format!("give {name} a URL with a scheme, e.g. http://127.0.0.1:4566, or unset it"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks what can be checked before the first call, once the configuration is loaded: the region
/// (from the environment or the profile too) has the form of one, and credentials can be found.
/// Whether the region exists only AWS knows: a region that does not is unreachable at the first call.
pub async fn check_ready(config: &SdkConfig, args: &AwsArgs) -> Result<(), Error> {
    use aws_credential_types::provider::ProvideCredentials;
    // As the AWS CLI ("You must specify a region"): no region anywhere is a configuration error,
    // not a silent us-east-1.
    let Some(region) = config.region().map(|r| r.to_string()) else {
        return Err(Error::config(
            "no AWS region is set (not --region, AWS_REGION, AWS_DEFAULT_REGION, nor the profile's region)",
            "give --region eu-west-1, export AWS_REGION, or set it in your profile: aws configure set region eu-west-1",
        ));
    };
    if !is_region_name(&region) {
        return Err(invalid_region(&region));
    }
    let Some(provider) = config.credentials_provider() else {
        return Err(Error::config("no AWS credentials provider is configured", CREDENTIALS_HINT));
    };
    if let Err(e) = provider.provide_credentials().await {
        if let Some(profile) = &args.profile {
            return Err(Error::config(
                format!("no usable credentials in profile \"{profile}\""),
                "check the profile's name and keys in ~/.aws/credentials and ~/.aws/config (`aws configure list-profiles`)",
            ));
        }
        let what = match e {
            aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_) => {
                "no AWS credentials found".to_string()
            }
            other => format!(
                "could not load AWS credentials: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&other)
            ),
        };
        return Err(Error::config(what, CREDENTIALS_HINT));
    }
    Ok(())
}

fn invalid_region(region: &str) -> Error {
    Error::usage(
        format!("invalid region \"{region}\""),
        "use a region code such as us-east-1 or eu-west-1 (`aws ec2 describe-regions` lists yours)",
    )
}

/// Region codes look like `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `eu-isoe-west-1`.
fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// A variable's value, when set to something.
fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// The selected profile of the AWS config and credentials files (`profile`: --profile, else
/// AWS_PROFILE, else default), read as aws-config reads them: its name and the settings of `keys`
/// it has.
async fn profiles(profile: Option<&str>, keys: &[&str]) -> Option<(String, std::collections::HashMap<String, String>)> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let selected = profile.map(|p| std::borrow::Cow::Owned(p.to_string()));
    let set = aws_config::profile::load(&Fs::real(), &Env::real(), &files, selected).await.ok()?;
    let name = set.selected_profile().to_string();
    let found = set.get_profile(&name)?;
    let values = keys.iter().filter_map(|k| Some((k.to_string(), found.get(k)?.to_string()))).collect();
    Some((name, values))
}

/// The output format the user configured for AWS tools: AWS_DEFAULT_OUTPUT, else the selected
/// profile's `output` (as the AWS CLI reads them); `--output` is the command line's, not read here.
pub async fn configured_output(profile: Option<&str>) -> Option<crate::output::Configured> {
    use crate::output::{Configured, Place};
    if let Some(value) = env("AWS_DEFAULT_OUTPUT") {
        return Some(Configured { place: Place::Env, value });
    }
    let (name, values) = profiles(profile, &["output"]).await?;
    let value = values.get("output")?.clone();
    Some(Configured { place: Place::Profile(name), value })
}

/// Attempts of one request when the user configured none (AWS_MAX_ATTEMPTS, max_attempts).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// What the user configured for the SDK's retries, field by field as aws-config and the AWS CLI
/// read them: AWS_MAX_ATTEMPTS and AWS_RETRY_MODE, else the profile's max_attempts and retry_mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserRetry {
    /// Attempts of one request, the first included.
    pub max_attempts: Option<u32>,
    /// standard or adaptive (the AWS CLI's legacy is read as standard: the Rust SDK has no other).
    pub mode: Option<aws_config::retry::RetryMode>,
    /// Where legacy was asked for, to be said once (main): it is not what the AWS CLI would do.
    pub legacy: Option<&'static str>,
}

impl UserRetry {
    /// The warning for a legacy retry mode, which the AWS CLI's legacy mode would retry otherwise
    /// (10 attempts for DynamoDB).
    pub fn warning(&self) -> Option<String> {
        self.legacy.map(|place| {
            format!("warning: {place} is legacy, which the AWS SDK for Rust does not have: retrying in standard mode")
        })
    }
}

/// Reads the user's retry settings (`profile`: --profile, else AWS_PROFILE or default); a value
/// the SDK cannot take is a configuration error with its place, not a panic deep in aws-config.
pub async fn user_retry(profile: Option<&str>) -> Result<UserRetry, Error> {
    let profiles = profiles(profile, &["max_attempts", "retry_mode"]).await;
    let in_profile = |key: &str| profiles.as_ref().and_then(|(_, values)| values.get(key).cloned());
    let attempts = env("AWS_MAX_ATTEMPTS")
        .map(|v| ("AWS_MAX_ATTEMPTS", v))
        .or_else(|| in_profile("max_attempts").map(|v| ("the profile's max_attempts", v)));
    let mode = env("AWS_RETRY_MODE")
        .map(|v| ("AWS_RETRY_MODE", v))
        .or_else(|| in_profile("retry_mode").map(|v| ("the profile's retry_mode", v)));
    let max_attempts = match attempts {
        None => None,
        Some((_, v)) if v.trim().parse::<u32>().is_ok_and(|n| n >= 1) => v.trim().parse().ok(),
        Some((place, v)) => {
            return Err(Error::config(
                format!("{place} is {v:?}, not a number of attempts (1 or more)"),
                format!("set {place} to a whole number such as 3, or unset it"),
            ));
        }
    };
    let mut legacy = None;
    let mode = match mode.as_ref().map(|(p, v)| (*p, v.trim().to_ascii_lowercase())) {
        None => None,
        Some((_, v)) if v == "standard" => Some(aws_config::retry::RetryMode::Standard),
        Some((place, v)) if v == "legacy" => {
            legacy = Some(place);
            Some(aws_config::retry::RetryMode::Standard)
        }
        Some((_, v)) if v == "adaptive" => Some(aws_config::retry::RetryMode::Adaptive),
        Some((place, v)) => {
            return Err(Error::config(
                format!("{place} is {v:?}, not a retry mode"),
                format!("set {place} to standard or adaptive (legacy is read as standard), or unset it"),
            ));
        }
    };
    Ok(UserRetry { max_attempts, mode, legacy })
}

/// The retry configuration of this process: what the user set, field by field; ours (`mode`, and
/// DEFAULT_MAX_ATTEMPTS) where they set nothing.
pub fn retry_config(user: UserRetry, mode: RetryMode) -> RetryConfig {
    let ours = match mode {
        RetryMode::Standard => aws_config::retry::RetryMode::Standard,
        RetryMode::Adaptive => aws_config::retry::RetryMode::Adaptive,
    };
    let config = match user.mode.unwrap_or(ours) {
        aws_config::retry::RetryMode::Adaptive => RetryConfig::adaptive(),
        _ => RetryConfig::standard(),
    };
    config.with_max_attempts(user.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))
}

/// How hard the SDK retries whole requests (throttling, 5xx, timeouts) when the user set nothing.
#[derive(Debug, Clone, Copy)]
pub enum RetryMode {
    /// Standard retries: the CLI commands.
    Standard,
    /// Client-side rate limiting on top: producers that push a stream to its limits.
    Adaptive,
}

/// Builds the one `SdkConfig` of the process: rustls (ring) HTTPS client, standard chain, timeouts.
pub async fn load_config(args: &AwsArgs, retry: RetryMode) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    // Invalid settings were refused by `user_retry` before (main); here they fall back to ours.
    let user = user_retry(args.profile.as_deref()).await.unwrap_or_default();
    let retry_config = retry_config(user, retry);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .operation_attempt_timeout(Duration::from_secs(90))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http.clone())
        .retry_config(retry_config)
        .timeout_config(timeouts);
    if let Some(profile) = &args.profile {
        // As in the AWS CLI, --profile wins over credentials in the environment.
        loader = loader.profile_name(profile).credentials_provider(
            ProfileFileCredentialsProvider::builder()
                .configure(&ProviderConfig::default().with_http_client(http))
                .profile_name(profile)
                .build(),
        );
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The service clients, built once from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CloudFormation: the stack.
    pub cfn: aws_sdk_cloudformation::Client,
    /// Kinesis: the stream.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB: the table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3: the artifact bucket.
    pub s3: aws_sdk_s3::Client,
    /// IAM: the producer's access key.
    pub iam: aws_sdk_iam::Client,
    /// STS: the account id (artifact bucket name).
    pub sts: aws_sdk_sts::Client,
    /// Lambda: the function and its event source mapping.
    pub lambda: aws_sdk_lambda::Client,
    /// CloudWatch: the function's metrics.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// SQS: the mapping's on-failure destination (`stream local`, `stream redrive`).
    pub sqs: aws_sdk_sqs::Client,
    /// CloudWatch Logs: the function's log (`stream logs`).
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// The region every client talks to.
    pub region: String,
    /// `--endpoint-url`, when given: every service goes there.
    pub endpoint_override: Option<String>,
    /// The configuration the clients were built from (credentials for `stream local`'s function).
    pub config: SdkConfig,
}

/// The endpoint a service's client of `config` talks to when it is not AWS's own: `--endpoint-url`,
/// else what aws-config read for the service (its variable, the global one, the profile's).
pub fn endpoint(config: &SdkConfig, service_id: &str) -> Option<String> {
    use aws_types::service_config::ServiceConfigKey;
    if config.get_origin("endpoint_url").is_client_config() {
        return config.endpoint_url().map(str::to_string);
    }
    let key =
        ServiceConfigKey::builder().service_id(service_id).env(ENDPOINT_ENV).profile("endpoint_url").build().ok()?;
    config.service_config().and_then(|s| s.load_config(key)).or_else(|| config.endpoint_url().map(str::to_string))
}

impl Clients {
    /// The endpoint `service_id` talks to, when not AWS's own.
    pub fn endpoint(&self, service_id: &str) -> Option<String> {
        endpoint(&self.config, service_id)
    }

    /// Builds every client from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        // A custom endpoint (an emulator) serves buckets by path, not by virtual host name.
        let s3_config =
            aws_sdk_s3::config::Builder::from(config).force_path_style(endpoint(config, "S3").is_some()).build();
        Clients {
            cfn: aws_sdk_cloudformation::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: aws_sdk_iam::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_else(|| DEFAULT_REGION.into()),
            endpoint_override: config
                .get_origin("endpoint_url")
                .is_client_config()
                .then(|| config.endpoint_url().map(str::to_string))
                .flatten(),
            config: config.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_checked_by_form() {
        for ok in ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "eu-isoe-west-1"] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in ["", "us", "us-east", "US-EAST-1", "us_east_1", "us-east-x", "us--1"] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    /// The user's settings win field by field; ours fill in; the AWS CLI's legacy reads as standard.
    #[test]
    fn the_users_retry_settings_win_field_by_field() {
        use aws_config::retry::RetryMode as Sdk;
        let ours = retry_config(UserRetry::default(), RetryMode::Adaptive);
        assert_eq!((ours.mode(), ours.max_attempts()), (Sdk::Adaptive, DEFAULT_MAX_ATTEMPTS));
        let theirs = retry_config(UserRetry { max_attempts: Some(2), ..Default::default() }, RetryMode::Adaptive);
        assert_eq!((theirs.mode(), theirs.max_attempts()), (Sdk::Adaptive, 2));
        let theirs = retry_config(UserRetry { mode: Some(Sdk::Standard), ..Default::default() }, RetryMode::Adaptive);
        assert_eq!((theirs.mode(), theirs.max_attempts()), (Sdk::Standard, DEFAULT_MAX_ATTEMPTS));
    }

    #[test]
    fn endpoint_url_needs_a_scheme() {
        let args = AwsArgs { endpoint_url: Some("localhost:4566".into()), ..Default::default() };
        let err = args.validate().expect_err("no scheme");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("localhost:4566"));
    }
}
