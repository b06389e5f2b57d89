//! The function's artifact: a Linux executable zipped as `bootstrap` (mode 0755) beside its event
//! schema (`schema.json`, read once at init), the zip's SHA-256 and the Lambda architecture read
//! from the ELF header; and the artifact bucket `stream` manages (one per account and region,
//! private), where zips — and the schema files as written — are uploaded once, keyed by stack and
//! hash, and every version of a stack's objects is deleted by `destroy`.

use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::aws::Clients;
use crate::elf::{Arch, Linkage, lambda_arch};
use crate::error::Error;
use crate::progress;
use crate::schema::{Loaded, Schema};
use crate::template::SCHEMA_IN_CODE;

/// A zipped function ready to upload.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The zip: `bootstrap` (mode 0755) and `schema.json`.
    pub zip: Vec<u8>,
    /// Hex SHA-256 of `zip`.
    pub sha256: String,
    /// Architecture of the executable.
    pub arch: Arch,
    /// Size of the executable before zipping.
    pub binary_len: usize,
    /// Where the executable came from.
    pub source: PathBuf,
}

/// A Linux executable read and checked, ready to be zipped with a schema.
#[derive(Debug, Clone)]
pub struct Executable {
    bytes: Vec<u8>,
    arch: Arch,
    source: PathBuf,
}

impl Executable {
    /// Its architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Zips it with `schema`.
    pub fn package(self, schema: &Schema) -> Result<Artifact, Error> {
        let zip = zip_code(&self.bytes, &schema.spec().canonical()).map_err(|e| Error::io("zipping bootstrap", e))?;
        let sha256 = hex::encode(Sha256::digest(&zip));
        Ok(Artifact { zip, sha256, arch: self.arch, binary_len: self.bytes.len(), source: self.source })
    }
}

/// Reads the executable at `path` — or, when `None`, the one for `arch` (`locate`) — and checks
/// that Lambda can run it: an ELF for x86_64 or arm64 (for `arch`, when given) that needs nothing
/// provided.al2023 lacks.
pub fn read_executable(path: Option<&Path>, arch: Option<Arch>) -> Result<Executable, Error> {
    let source = match path {
        Some(p) => p.to_path_buf(),
        None => locate(arch)?,
    };
    let bytes = std::fs::read(&source).map_err(|e| Error::io(source.display().to_string(), e))?;
    let found = lambda_arch(&bytes).map_err(|why| {
        Error::usage(
            format!("{} is {why}", source.display()),
            "pass --bootstrap a Linux executable built for x86_64 or arm64 (e.g. scripts/build's output)",
        )
    })?;
    let arch = match arch {
        Some(want) if want != found => {
            return Err(Error::usage(
                format!("{} is built for {}, not {}", source.display(), found.as_str(), want.as_str()),
                format!(
                    "give --arch {}, or a build for {} (scripts/build --arch {})",
                    found.as_str(),
                    want.as_str(),
                    want.as_str()
                ),
            ));
        }
        _ => found,
    };
    check_runs_on_al2023(&source, &bytes)?;
    Ok(Executable { bytes, arch, source })
}

/// The executable for `arch`: this binary when it is a Linux executable of that architecture (or
/// no architecture is asked for), else the build scripts/build puts beside it, `stream-<arch>`.
/// Read before any call: a missing build is one line and the command that makes it.
fn locate(arch: Option<Arch>) -> Result<PathBuf, Error> {
    let me = std::env::current_exe().map_err(|e| Error::io("this executable's path", e))?;
    let mut header = [0u8; 64];
    let read = std::fs::File::open(&me).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    // None when this binary is no Linux executable (a CLI built for macOS): its sibling is needed.
    let mine = read.ok().and_then(|n| lambda_arch(&header[..n]).ok());
    let host = if cfg!(target_arch = "aarch64") { Arch::Arm64 } else { Arch::X86_64 };
    let want = arch.or(mine).unwrap_or(host);
    if mine == Some(want) {
        return Ok(me);
    }
    let sibling = me.with_file_name(format!("stream-{}", want.as_str()));
    if sibling.is_file() {
        return Ok(sibling);
    }
    Err(Error::usage(
        format!("no {} build of stream beside {} (looked for {})", want.as_str(), me.display(), sibling.display()),
        format!(
            "build it with `scripts/build --arch {}` and deploy with the stream it prints beside it, or give --bootstrap FILE",
            want.as_str()
        ),
    ))
}

/// Refuses (on a terminal: asks about) an executable that needs what provided.al2023 lacks: a
/// glibc newer than its 2.34, or another shared library. It would run here and fail at start there.
fn check_runs_on_al2023(source: &Path, bytes: &[u8]) -> Result<(), Error> {
    let missing = Linkage::read(bytes).missing_on_al2023();
    if missing.is_empty() {
        return Ok(());
    }
    let what = format!("{} needs {}, which provided.al2023 lacks", source.display(), missing.join(" and "));
    if progress::stdin_is_tty() {
        progress::status(format!("warning: {what}"));
        if progress::confirm("Upload it anyway? It would fail at start in Lambda") {
            return Ok(());
        }
    }
    Err(Error::usage(
        what,
        "build with scripts/build (a static binary that needs nothing of the machine), or link against glibc 2.34 or older",
    ))
}

/// The function's zip: `bootstrap` (0755) and the event schema as `schema.json` (0644). The fixed
/// timestamps make the zip, and so its hash, depend only on the executable and the schema: the
/// same pair is never uploaded twice, and a new schema is new code.
pub fn zip_code(executable: &[u8], schema_json: &str) -> std::io::Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(executable.len() / 2)));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::DEFAULT);
    zip.start_file("bootstrap", options.unix_permissions(0o755)).map_err(std::io::Error::other)?;
    zip.write_all(executable)?;
    zip.start_file(SCHEMA_IN_CODE, options.unix_permissions(0o644)).map_err(std::io::Error::other)?;
    zip.write_all(schema_json.as_bytes())?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// The artifact bucket `stream` manages: one per account and region, like SAM's managed bucket.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("stream-artifacts-{account}-{region}")
}

/// Key of a function zip: the stack as prefix (so destroy removes only its own), the zip's SHA-256 as name.
pub fn key(stack: &str, sha256: &str) -> String {
    format!("{stack}/{sha256}.zip")
}

/// Key of a schema file as written: under the stack's schema prefix, its SHA-256 and its format as
/// name.
pub fn schema_key(stack: &str, schema: &Loaded) -> String {
    let ext = if schema.toml { "toml" } else { "json" };
    format!("{}{}.{ext}", schema_prefix(stack), hex::encode(Sha256::digest(schema.text.as_bytes())))
}

/// Where a stack's schema files are kept: beside its zips, not among them (`<stack>.schema/`; a
/// stack name holds no dot, so no other stack's prefix can be this one).
pub fn schema_prefix(stack: &str) -> String {
    format!("{stack}.schema/")
}

/// The account the credentials belong to.
pub async fn account_id(clients: &Clients) -> Result<String, Error> {
    let me = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::aws("GetCallerIdentity", "this account", e))?;
    me.account.ok_or_else(|| Error::failed("GetCallerIdentity returned no account", "check the credentials in use"))
}

/// The bucket the function's code goes to: `wanted` (--s3-bucket, else the stack's CodeBucket)
/// when it is the user's own — it must exist, in the stack's region, since Lambda takes code only
/// from there; stream never creates one — else stream's managed bucket, created when missing if
/// `create` (not on a dry run).
pub async fn code_bucket(clients: &Clients, wanted: Option<&str>, create: bool) -> Result<String, Error> {
    let managed = bucket_name(&account_id(clients).await?, &clients.region);
    match wanted {
        Some(b) if b != managed => {
            check_user_bucket(clients, b).await?;
            Ok(b.to_string())
        }
        _ if create => ensure_bucket(clients).await,
        _ => Ok(managed),
    }
}

/// True for stream's managed bucket of this account and region (the one destroy may remove).
pub async fn is_managed(clients: &Clients, bucket: &str) -> Result<bool, Error> {
    Ok(bucket == bucket_name(&account_id(clients).await?, &clients.region))
}

/// A bucket of the user's: it exists, this identity may use it, and it is in the stack's region.
async fn check_user_bucket(clients: &Clients, bucket: &str) -> Result<(), Error> {
    match clients.s3.head_bucket().bucket(bucket).send().await {
        Ok(out) => match out.bucket_region() {
            Some(r) if r != clients.region => Err(Error::usage(
                format!(
                    "bucket {bucket} is in {r}, the stack in {}: Lambda takes code only from its own region",
                    clients.region
                ),
                format!("give --s3-bucket a bucket in {}", clients.region),
            )),
            _ => Ok(()),
        },
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Err(Error::usage(
            format!("bucket {bucket} does not exist (stream uses a bucket of yours as it is: it never creates one)"),
            format!(
                "create it first (aws s3 mb s3://{bucket} --region {}), or leave out --s3-bucket for stream's own bucket",
                clients.region
            ),
        )),
        Err(e) => Err(Error::aws("HeadBucket", bucket, e)),
    }
}

/// Creates the artifact bucket when missing: private, public access blocked.
pub async fn ensure_bucket(clients: &Clients) -> Result<String, Error> {
    let bucket = bucket_name(&account_id(clients).await?, &clients.region);
    match clients.s3.head_bucket().bucket(&bucket).send().await {
        Ok(_) => return Ok(bucket),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws("HeadBucket", &bucket, e)),
    }
    progress::status(format!("creating artifact bucket {bucket}"));
    let mut create = clients.s3.create_bucket().bucket(&bucket);
    // us-east-1 is the one region that takes no LocationConstraint.
    if clients.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(clients.region.as_str()))
                .build(),
        );
    }
    match create.send().await.map_err(|e| Error::aws("CreateBucket", &bucket, e)) {
        // Another deploy in this account and region made it a moment ago: it is ours all the same.
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
        other => {
            other?;
        }
    }
    clients
        .s3
        .put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| Error::aws("PutPublicAccessBlock", &bucket, e))?;
    Ok(bucket)
}

/// Uploads the zip unless an object with its hash is already there. Returns whether it uploaded.
pub async fn upload_if_missing(clients: &Clients, bucket: &str, key: &str, artifact: &Artifact) -> Result<bool, Error> {
    put_if_missing(clients, bucket, key, &artifact.zip, "application/zip").await
}

/// Uploads the schema file as written (`schema show` prints it) unless it is already there.
pub async fn upload_schema(clients: &Clients, bucket: &str, key: &str, schema: &Loaded) -> Result<bool, Error> {
    let content_type = if schema.toml { "application/toml" } else { "application/json" };
    put_if_missing(clients, bucket, key, schema.text.as_bytes(), content_type).await
}

/// Puts `bytes` at `key` unless an object is there (keys are content hashes).
async fn put_if_missing(
    clients: &Clients,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    content_type: &str,
) -> Result<bool, Error> {
    let location = format!("s3://{bucket}/{key}");
    match clients.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => {
            progress::status(format!("artifact {location} already uploaded"));
            return Ok(false);
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws("HeadObject", location, e)),
    }
    progress::status(format!("uploading {location}"));
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes.to_vec()))
        .content_type(content_type)
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", &location, e))?;
    Ok(true)
}

/// Deletes every version and delete marker of every object under each of `prefixes` (a versioned
/// bucket keeps old versions otherwise); deletes the bucket when nothing else is left in it.
/// Returns the number of keys removed under each prefix and whether the bucket went too.
/// A bucket of the user's own (`may_delete_bucket` false) is never deleted, empty or not.
pub async fn delete_artifacts(
    clients: &Clients,
    bucket: &str,
    prefixes: &[&str],
    may_delete_bucket: bool,
) -> Result<(Vec<usize>, bool), Error> {
    let mut removed = Vec::new();
    let mut versions = Vec::new();
    for prefix in prefixes {
        let Some(v) = list_versions(clients, bucket, Some(prefix)).await? else {
            return Ok((vec![0; prefixes.len()], false));
        };
        removed.push(v.iter().map(|(k, _)| k.as_str()).collect::<HashSet<&str>>().len());
        versions.extend(v);
    }
    // DeleteObjects takes at most 1,000 keys per call.
    for chunk in versions.chunks(1000) {
        let objects: Vec<ObjectIdentifier> = chunk
            .iter()
            .filter_map(|(k, v)| ObjectIdentifier::builder().key(k).set_version_id(v.clone()).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::failed(format!("building DeleteObjects: {e}"), "report this as a bug"))?;
        let out = clients
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| Error::aws("DeleteObjects", bucket, e))?;
        if let Some(err) = out.errors().first() {
            return Err(Error::failed(
                format!(
                    "could not delete s3://{bucket}/{}: {}",
                    err.key().unwrap_or("?"),
                    err.message().unwrap_or_else(|| err.code().unwrap_or("no reason given"))
                ),
                "check s3:DeleteObjectVersion on the artifact bucket, then run destroy again",
            ));
        }
    }
    if !may_delete_bucket {
        return Ok((removed, false));
    }
    let empty = list_versions(clients, bucket, None).await?.is_none_or(|v| v.is_empty());
    if empty {
        clients.s3.delete_bucket().bucket(bucket).send().await.map_err(|e| Error::aws("DeleteBucket", bucket, e))?;
    }
    Ok((removed, empty))
}

/// (key, version id) of every object version and delete marker under `prefix` (the whole bucket
/// when `None`); `None` when the bucket does not exist.
async fn list_versions(
    clients: &Clients,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Option<Vec<(String, Option<String>)>>, Error> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = clients
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(prefix.map(str::to_string))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if e.as_service_error().is_some_and(|s| s.code() == Some("NoSuchBucket")) => return Ok(None),
            Err(e) => return Err(Error::aws("ListObjectVersions", bucket, e)),
        };
        out.extend(
            page.versions().iter().filter_map(|v| Some((v.key()?.to_string(), v.version_id().map(str::to_string)))),
        );
        out.extend(
            page.delete_markers()
                .iter()
                .filter_map(|m| Some((m.key()?.to_string(), m.version_id().map(str::to_string)))),
        );
        if page.is_truncated() != Some(true) {
            return Ok(Some(out));
        }
        key_marker = page.next_key_marker;
        version_marker = page.next_version_id_marker;
        if key_marker.is_none() {
            return Ok(Some(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = data;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn zip_holds_an_executable_bootstrap_and_its_schema_and_is_reproducible() {
        use std::io::Read;
        let exe = elf(2, 1, 3, 62);
        let a = zip_code(&exe, r#"{"name":"x"}"#).expect("zip");
        let b = zip_code(&exe, r#"{"name":"x"}"#).expect("zip");
        assert_eq!(a, b, "same input, same bytes");
        assert_ne!(a, zip_code(&exe, r#"{"name":"y"}"#).expect("zip"), "another schema is other code");
        let mut archive = zip::ZipArchive::new(Cursor::new(a)).expect("readable zip");
        assert_eq!(archive.len(), 2);
        let entry = archive.by_name("bootstrap").expect("bootstrap entry");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(entry);
        let mut schema = String::new();
        archive.by_name(SCHEMA_IN_CODE).expect("schema entry").read_to_string(&mut schema).expect("text");
        assert_eq!(schema, r#"{"name":"x"}"#);
    }

    /// A reflected CRC computed bit by bit, the definition the tables must agree with.
    fn bitwise_crc(poly: u64, width: u32, data: &[u8]) -> Vec<u8> {
        let (mask, rpoly) = (u64::MAX >> (64 - width), poly.reverse_bits() >> (64 - width));
        let mut crc = mask;
        for byte in data {
            crc ^= u64::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ rpoly } else { crc >> 1 };
            }
        }
        let crc = crc ^ mask;
        crc.to_be_bytes()[(8 - width as usize / 8)..].to_vec()
    }

    /// S3's flexible checksums go through src/patch/crc_fast: the SDK's own checksum objects give the
    /// catalogue's check values, and agree with the bitwise definition on long, split inputs.
    #[test]
    fn the_sdks_checksums_give_the_catalogues_check_values() {
        use aws_smithy_checksums::ChecksumAlgorithm;
        let long: Vec<u8> = (0..10_007u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let cases: [(&str, u64, u32, &[u8]); 3] = [
            ("crc32", 0x04C1_1DB7, 32, &0xCBF4_3926u32.to_be_bytes()),
            ("crc32c", 0x1EDC_6F41, 32, &0xE306_9283u32.to_be_bytes()),
            ("crc64nvme", 0xAD93_D235_94C9_3659, 64, &0xAE8B_1486_0A79_9888u64.to_be_bytes()),
        ];
        for (name, poly, width, check) in cases {
            let algorithm: ChecksumAlgorithm = name.parse().expect("known algorithm");
            let mut one = algorithm.into_impl();
            one.update(b"123456789");
            assert_eq!(one.finalize().as_ref(), check, "{name} check value");
            let mut split = algorithm.into_impl();
            split.update(&long[..4_099]);
            split.update(&long[4_099..]);
            assert_eq!(split.finalize().to_vec(), bitwise_crc(poly, width, &long), "{name} on 10,007 bytes");
        }
    }

    #[test]
    fn artifacts_are_keyed_by_stack_and_hash() {
        assert_eq!(bucket_name("123456789012", "eu-west-1"), "stream-artifacts-123456789012-eu-west-1");
        assert_eq!(key("s1", "ab12"), "s1/ab12.zip");
        let tweets = crate::schema::built_in("tweets").expect("built in");
        let schema = schema_key("s1", &tweets);
        assert!(
            schema.starts_with("s1.schema/")
                && schema.ends_with(".toml")
                && schema.len() == "s1.schema/".len() + 64 + 5,
            "{schema}"
        );
    }

    #[test]
    fn this_test_binary_packages_as_x86_64() {
        let artifact = read_executable(None, None).expect("read self").package(Schema::tweets()).expect("package self");
        assert_eq!(artifact.arch, Arch::X86_64);
        assert_eq!(artifact.sha256.len(), 64);
    }
}
