//! The artifact bucket `stream` manages, one per account and region and private, where each
//! stack's zips and schema files as written are uploaded once, keyed by stack and hash; a bucket of
//! the user's (`deploy --s3-bucket`) is used as it is. `destroy` deletes every version of a stack's
//! objects, and the managed bucket once nothing is left in it.

use std::collections::HashSet;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use crate::aws::Clients;
use crate::error::Error;
use crate::progress;
use crate::schema::Loaded;

/// Attempts at a deploy's uploads to the managed bucket, each after making it again: a destroy
/// of another stack can delete it only while it is empty, so a second attempt is almost always
/// enough; a third covers a bucket deleted again before the first upload landed.
const UPLOAD_ATTEMPTS: u32 = 3;

/// The bucket a stack's code goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBucket {
    /// Its name.
    pub name: String,
    /// Whether it is stream's managed bucket (which stream makes, and `destroy` removes once empty).
    pub managed: bool,
}

/// What a deploy uploads: the function's zip and the schema file as written.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// Key of the zip ([`key`]).
    pub key: &'a str,
    /// The zip.
    pub zip: &'a [u8],
    /// Key of the schema file ([`schema_key`]).
    pub schema_key: &'a str,
    /// The schema as loaded.
    pub schema: &'a Loaded,
}

impl Upload<'_> {
    fn schema_type(&self) -> &'static str {
        if self.schema.toml { "application/toml" } else { "application/json" }
    }
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
pub async fn account_id(sts: &aws_sdk_sts::Client) -> Result<String, Error> {
    let me = sts.get_caller_identity().send().await.map_err(|e| Error::aws("GetCallerIdentity", "this account", e))?;
    me.account.ok_or_else(|| Error::failed("GetCallerIdentity returned no account", "check the credentials in use"))
}

/// The bucket the function's code goes to: `wanted` (--s3-bucket, else the stack's CodeBucket)
/// when it is the user's own — it must exist, in the stack's region, since Lambda takes code only
/// from there; stream never creates one — else stream's managed bucket, created when missing if
/// `create` (not on a dry run).
pub async fn code_bucket(clients: &Clients, wanted: Option<&str>, create: bool) -> Result<CodeBucket, Error> {
    let managed = bucket_name(&account_id(&clients.sts).await?, &clients.region);
    choose_bucket(&clients.s3, &clients.region, managed, wanted, create).await
}

/// `code_bucket` once the managed bucket's name is known: `wanted` naming it is the managed one.
async fn choose_bucket(
    s3: &aws_sdk_s3::Client,
    region: &str,
    managed: String,
    wanted: Option<&str>,
    create: bool,
) -> Result<CodeBucket, Error> {
    match wanted {
        Some(b) if b != managed => {
            check_user_bucket(s3, region, b).await?;
            Ok(CodeBucket { name: b.to_string(), managed: false })
        }
        _ => {
            if create {
                ensure_bucket(s3, region, &managed).await?;
            }
            Ok(CodeBucket { name: managed, managed: true })
        }
    }
}

/// A bucket of the user's: it exists, this identity may use it, and it is in the stack's region.
async fn check_user_bucket(s3: &aws_sdk_s3::Client, region: &str, bucket: &str) -> Result<(), Error> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(out) => match out.bucket_region() {
            Some(r) if r != region => Err(Error::usage(
                format!("bucket {bucket} is in {r}, the stack in {region}: Lambda takes code only from its own region"),
                format!("give --s3-bucket a bucket in {region}"),
            )),
            _ => Ok(()),
        },
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Err(Error::usage(
            format!("bucket {bucket} does not exist (stream uses a bucket of yours as it is: it never creates one)"),
            format!(
                "create it first (aws s3 mb s3://{bucket} --region {region}), or leave out --s3-bucket for stream's own bucket"
            ),
        )),
        Err(e) => Err(Error::aws("HeadBucket", bucket, e)),
    }
}

/// Creates the managed bucket `bucket` in `region` when missing.
async fn ensure_bucket(s3: &aws_sdk_s3::Client, region: &str, bucket: &str) -> Result<(), Error> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => make_bucket(s3, region, bucket).await,
        Err(e) => Err(Error::aws("HeadBucket", bucket, e)),
    }
}

/// Creates the managed bucket: private, public access blocked. One made a moment ago by another
/// deploy of this account is taken as it is.
async fn make_bucket(s3: &aws_sdk_s3::Client, region: &str, bucket: &str) -> Result<(), Error> {
    progress::status(format!("creating artifact bucket {bucket}"));
    let mut create = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no LocationConstraint.
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
        );
    }
    match create.send().await.map_err(|e| Error::aws("CreateBucket", bucket, e)) {
        // Another deploy in this account and region made it a moment ago: it is ours all the same.
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
        other => {
            other?;
        }
    }
    s3.put_public_access_block()
        .bucket(bucket)
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
        .map_err(|e| Error::aws("PutPublicAccessBlock", bucket, e))?;
    Ok(())
}

/// Uploads the function's zip and the schema file as written (`schema show` prints it) to
/// `bucket`, each unless it is already there. Returns whether the zip was uploaded.
///
/// The managed bucket serves every stack of the account and region, and a `destroy` deletes it
/// when it finds it empty: a destroy of another stack may do so between this deploy's
/// `ensure_bucket` and its PutObject. The bucket is then made again and the uploads repeated; a
/// bucket of the user's is never made, its NoSuchBucket stays an error.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    region: &str,
    bucket: &CodeBucket,
    up: &Upload<'_>,
) -> Result<bool, Error> {
    let mut uploaded = false;
    let mut attempt = 1;
    loop {
        let result = async {
            if attempt > 1 {
                make_bucket(s3, region, &bucket.name).await?;
            }
            uploaded |= put_if_missing(s3, &bucket.name, up.key, up.zip, "application/zip").await?;
            put_if_missing(s3, &bucket.name, up.schema_key, up.schema.text.as_bytes(), up.schema_type()).await
        }
        .await;
        match result {
            Ok(_) => return Ok(uploaded),
            Err(e) if bucket.managed && attempt < UPLOAD_ATTEMPTS && e.code() == Some("NoSuchBucket") => {
                progress::status(format!(
                    "artifact bucket {} was deleted meanwhile (a destroy found it empty): making it again",
                    bucket.name
                ));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Puts `bytes` at `key` unless an object is there (keys are content hashes).
async fn put_if_missing(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    content_type: &str,
) -> Result<bool, Error> {
    let location = format!("s3://{bucket}/{key}");
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => {
            progress::status(format!("artifact {location} already uploaded"));
            return Ok(false);
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(Error::aws("HeadObject", location, e)),
    }
    progress::status(format!("uploading {location}"));
    s3.put_object()
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
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefixes: &[&str],
    may_delete_bucket: bool,
) -> Result<(Vec<usize>, bool), Error> {
    let mut removed = Vec::new();
    let mut versions = Vec::new();
    for prefix in prefixes {
        let Some(v) = list_versions(s3, bucket, Some(prefix)).await? else {
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
        let out = s3
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
    if !list_versions(s3, bucket, None).await?.is_none_or(|v| v.is_empty()) {
        return Ok((removed, false));
    }
    match s3.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok((removed, true)),
        // A deploy of another stack uploaded to it since the listing: it is in use, and kept.
        Err(e) if e.code() == Some("BucketNotEmpty") => Ok((removed, false)),
        Err(e) => Err(Error::aws("DeleteBucket", bucket, e)),
    }
}

/// (key, version id) of every object version and delete marker under `prefix` (the whole bucket
/// when `None`); `None` when the bucket does not exist.
async fn list_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Option<Vec<(String, Option<String>)>>, Error> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
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
    use aws_sdk_s3::operation::create_bucket::CreateBucketOutput;
    use aws_sdk_s3::operation::delete_bucket::{DeleteBucketError, DeleteBucketOutput};
    use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
    use aws_sdk_s3::operation::head_object::HeadObjectError;
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_sdk_s3::operation::put_public_access_block::PutPublicAccessBlockOutput;
    use aws_sdk_s3::types::ObjectVersion;
    use aws_sdk_s3::types::error::NotFound;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    const BUCKET: &str = "stream-artifacts-123456789012-eu-central-1";

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("as S3 says it").build()
    }

    fn head_missing() -> Rule {
        mock!(aws_sdk_s3::Client::head_object).then_error(|| HeadObjectError::NotFound(NotFound::builder().build()))
    }

    fn put(key: &'static str, answer: Option<&'static str>) -> Rule {
        // The zip as a zip, the tweets schema as the TOML it is written in.
        let content_type = if key.ends_with(".zip") { "application/zip" } else { "application/toml" };
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(move |r| r.key() == Some(key) && r.content_type() == Some(content_type));
        match answer {
            None => rule.then_output(|| PutObjectOutput::builder().build()),
            Some(code) => rule.then_error(move || PutObjectError::generic(meta(code))),
        }
    }

    fn make() -> [Rule; 2] {
        let create = mock!(aws_sdk_s3::Client::create_bucket)
            .match_requests(|r| {
                r.bucket() == Some(BUCKET)
                    && r.create_bucket_configuration()
                        .and_then(|c| c.location_constraint())
                        .is_some_and(|l| l.as_str() == "eu-central-1")
            })
            .then_output(|| CreateBucketOutput::builder().build());
        let block = mock!(aws_sdk_s3::Client::put_public_access_block)
            .match_requests(|r| {
                r.public_access_block_configuration()
                    .is_some_and(|c| c.block_public_acls() == Some(true) && c.restrict_public_buckets() == Some(true))
            })
            .then_output(|| PutPublicAccessBlockOutput::builder().build());
        [create, block]
    }

    async fn upload_to(bucket: &CodeBucket, rules: &[Rule]) -> Result<bool, Error> {
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, rules);
        let schema = crate::schema::built_in("tweets").expect("built in");
        let up = Upload { key: "s1/ab.zip", zip: b"zip", schema_key: "s1.schema/cd.toml", schema: &schema };
        upload(&s3, "eu-central-1", bucket, &up).await
    }

    /// A destroy of another stack deleted the managed bucket between this deploy's HeadBucket and
    /// its PutObject: the bucket is made again (private, in the region) and both files uploaded.
    #[tokio::test]
    async fn a_managed_bucket_deleted_before_the_upload_is_made_again() {
        let managed = CodeBucket { name: BUCKET.into(), managed: true };
        let [create, block] = make();
        let rules = [
            head_missing(),
            put("s1/ab.zip", Some("NoSuchBucket")),
            create.clone(),
            block.clone(),
            head_missing(),
            put("s1/ab.zip", None),
            head_missing(),
            put("s1.schema/cd.toml", None),
        ];
        assert!(upload_to(&managed, &rules).await.expect("uploaded after making the bucket again"));
        assert_eq!((create.num_calls(), block.num_calls()), (1, 1));
        assert_eq!(rules[5].num_calls() + rules[7].num_calls(), 2, "both files land");

        // Deleted again each time: the third NoSuchBucket is the error.
        let [create, block] = make();
        let [c2, b2] = make();
        let rules = [
            head_missing(),
            put("s1/ab.zip", Some("NoSuchBucket")),
            create.clone(),
            block,
            head_missing(),
            put("s1/ab.zip", Some("NoSuchBucket")),
            c2.clone(),
            b2,
            head_missing(),
            put("s1/ab.zip", Some("NoSuchBucket")),
        ];
        let err = upload_to(&managed, &rules).await.expect_err("gives up");
        assert_eq!(err.code(), Some("NoSuchBucket"));
        assert_eq!(create.num_calls() + c2.num_calls(), 2);
    }

    /// A bucket of the user's is never made: its NoSuchBucket is the deploy's error.
    #[tokio::test]
    async fn a_users_bucket_is_never_made() {
        let theirs = CodeBucket { name: "my-code".into(), managed: false };
        let [create, _] = make();
        let rules = [head_missing(), put("s1/ab.zip", Some("NoSuchBucket")), create.clone()];
        let err = upload_to(&theirs, &rules).await.expect_err("fails");
        assert_eq!(err.code(), Some("NoSuchBucket"));
        assert_eq!(create.num_calls(), 0);
        // Other refusals are errors for the managed bucket too, not a reason to make it.
        let managed = CodeBucket { name: BUCKET.into(), managed: true };
        let rules = [head_missing(), put("s1/ab.zip", Some("AccessDenied")), create.clone()];
        assert_eq!(upload_to(&managed, &rules).await.expect_err("fails").code(), Some("AccessDenied"));
        assert_eq!(create.num_calls(), 0);
    }

    fn listed(keys: &'static [&'static str]) -> Rule {
        mock!(aws_sdk_s3::Client::list_object_versions).then_output(move || {
            let versions = keys.iter().map(|k| ObjectVersion::builder().key(*k).version_id("v1").build());
            ListObjectVersionsOutput::builder().set_versions(Some(versions.collect())).is_truncated(false).build()
        })
    }

    /// destroy deletes the stack's objects, finds the bucket empty and deletes it; when a deploy of
    /// another stack uploads in between, S3 answers BucketNotEmpty and the bucket is kept.
    #[tokio::test]
    async fn destroy_keeps_a_bucket_a_deploy_filled_meanwhile() {
        for (answer, gone) in [(None, Some(true)), (Some("BucketNotEmpty"), Some(false)), (Some("AccessDenied"), None)]
        {
            let delete = mock!(aws_sdk_s3::Client::delete_bucket).match_requests(|r| r.bucket() == Some(BUCKET));
            let delete = match answer {
                None => delete.then_output(|| DeleteBucketOutput::builder().build()),
                Some(code) => delete.then_error(move || DeleteBucketError::generic(meta(code))),
            };
            let rules = [
                listed(&["s1/ab.zip", "s1/ab.zip"]),
                listed(&["s1.schema/cd.toml"]),
                mock!(aws_sdk_s3::Client::delete_objects)
                    .match_requests(|r| r.delete().is_some_and(|d| d.objects().len() == 3))
                    .then_output(|| DeleteObjectsOutput::builder().build()),
                listed(&[]),
                delete.clone(),
            ];
            let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &rules);
            let out = delete_artifacts(&s3, BUCKET, &["s1/", "s1.schema/"], true).await;
            assert_eq!(out.as_ref().ok(), gone.map(|g| (vec![1, 1], g)).as_ref(), "{answer:?}: {out:?}");
            assert_eq!(delete.num_calls(), 1);
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

    /// The managed bucket is made only when HeadBucket finds none: private, with the region's
    /// LocationConstraint (us-east-1 takes none).
    #[tokio::test]
    async fn the_managed_bucket_is_made_only_when_missing() {
        use aws_sdk_s3::operation::head_bucket::{HeadBucketError, HeadBucketOutput};
        let [create, block] = make();
        let found = mock!(aws_sdk_s3::Client::head_bucket).then_output(|| HeadBucketOutput::builder().build());
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&found, &create]);
        ensure_bucket(&s3, "eu-central-1", BUCKET).await.expect("there");
        assert_eq!(create.num_calls(), 0);

        let missing = || {
            mock!(aws_sdk_s3::Client::head_bucket)
                .then_error(|| HeadBucketError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build()))
        };
        let rules = [missing(), create.clone(), block.clone()];
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &rules);
        ensure_bucket(&s3, "eu-central-1", BUCKET).await.expect("made");
        assert_eq!((create.num_calls(), block.num_calls()), (1, 1));

        let bare = mock!(aws_sdk_s3::Client::create_bucket)
            .match_requests(|r| r.create_bucket_configuration().is_none())
            .then_output(|| CreateBucketOutput::builder().build());
        let [_, block] = make();
        let rules = [missing(), bare.clone(), block];
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, &rules);
        ensure_bucket(&s3, "us-east-1", "stream-artifacts-123456789012-us-east-1").await.expect("made");
        assert_eq!(bare.num_calls(), 1);

        // Not found is the only answer that makes it: without permission, HeadBucket's error is
        // the deploy's, and nothing is created.
        let denied = mock!(aws_sdk_s3::Client::head_bucket).then_error(|| HeadBucketError::generic(meta("Forbidden")));
        let [create, block] = make();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&denied, &create, &block]);
        let e = ensure_bucket(&s3, "eu-central-1", BUCKET).await.expect_err("no permission");
        assert_eq!((e.code(), create.num_calls()), (Some("Forbidden"), 0), "{e}");
    }

    /// A bucket of the user's must exist and be in the stack's region (Lambda takes code only
    /// from there); either refusal says what to do.
    #[tokio::test]
    async fn a_users_bucket_must_exist_in_the_stacks_region() {
        use aws_sdk_s3::operation::head_bucket::{HeadBucketError, HeadBucketOutput};
        let head = |region: &'static str| {
            mock!(aws_sdk_s3::Client::head_bucket)
                .then_output(move || HeadBucketOutput::builder().bucket_region(region).build())
        };
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head("eu-west-1")]);
        check_user_bucket(&s3, "eu-west-1", "mine").await.expect("usable");
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head("us-west-2")]);
        let far = check_user_bucket(&s3, "eu-west-1", "mine").await.expect_err("other region");
        assert_eq!(
            far.to_string(),
            "bucket mine is in us-west-2, the stack in eu-west-1: Lambda takes code only from its own region"
        );
        assert_eq!(far.hint(), "give --s3-bucket a bucket in eu-west-1");
        let none = mock!(aws_sdk_s3::Client::head_bucket)
            .then_error(|| HeadBucketError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build()));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&none]);
        let gone = check_user_bucket(&s3, "eu-west-1", "mine").await.expect_err("missing");
        assert!(gone.to_string().starts_with("bucket mine does not exist"), "{gone}");
        assert!(gone.hint().starts_with("create it first (aws s3 mb s3://mine --region eu-west-1)"), "{}", gone.hint());
        // Any other answer (no permission) is HeadBucket's own error, not "does not exist".
        let denied = mock!(aws_sdk_s3::Client::head_bucket).then_error(|| HeadBucketError::generic(meta("Forbidden")));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&denied]);
        let denied = check_user_bucket(&s3, "eu-west-1", "mine").await.expect_err("no permission");
        assert_eq!(denied.code(), Some("Forbidden"), "{denied}");
        assert!(!denied.to_string().contains("does not exist"), "{denied}");
    }

    /// --s3-bucket naming a bucket of the user's is checked and used as theirs; naming the managed
    /// bucket (or none) is the managed bucket, made when missing unless on a dry run.
    #[tokio::test]
    async fn the_code_bucket_is_the_users_unless_it_is_the_managed_one() {
        use aws_sdk_s3::operation::head_bucket::HeadBucketOutput;
        let head = || {
            mock!(aws_sdk_s3::Client::head_bucket)
                .then_output(|| HeadBucketOutput::builder().bucket_region("eu-central-1").build())
        };
        for (wanted, create, heads, managed) in [
            (Some("mine"), true, 1, false),
            (Some("mine"), false, 1, false),
            (Some(BUCKET), true, 1, true),
            (Some(BUCKET), false, 0, true),
            (None, true, 1, true),
            (None, false, 0, true),
        ] {
            let found = head();
            let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&found]);
            let chosen = choose_bucket(&s3, "eu-central-1", BUCKET.into(), wanted, create).await.expect("chosen");
            let name = if managed { BUCKET } else { "mine" };
            assert_eq!((chosen.name.as_str(), chosen.managed), (name, managed), "{wanted:?} {create}");
            assert_eq!(found.num_calls(), heads, "{wanted:?} {create}: HeadBucket calls");
        }
    }

    /// The account is GetCallerIdentity's; an answer without one is refused with what to check.
    #[tokio::test]
    async fn the_account_is_the_callers() {
        use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput;
        let me = mock!(aws_sdk_sts::Client::get_caller_identity)
            .then_output(|| GetCallerIdentityOutput::builder().account("123456789012").build());
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&me]);
        assert_eq!(account_id(&sts).await.expect("an account"), "123456789012");
        let nobody =
            mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| GetCallerIdentityOutput::builder().build());
        let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&nobody]);
        let e = account_id(&sts).await.expect_err("no account");
        assert_eq!(e.to_string(), "GetCallerIdentity returned no account");
        assert_eq!(e.hint(), "check the credentials in use");
    }

    /// An artifact already in the bucket (same stack, same SHA-256) is not uploaded again; a
    /// HeadObject refused for want of permission is the deploy's error, and nothing is uploaded.
    #[tokio::test]
    async fn an_artifact_already_there_is_not_uploaded_again() {
        use aws_sdk_s3::operation::head_object::HeadObjectOutput;
        let there = mock!(aws_sdk_s3::Client::head_object).then_output(|| HeadObjectOutput::builder().build());
        let upload = put("s1/ab.zip", None);
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&there, &upload]);
        let sent = put_if_missing(&s3, BUCKET, "s1/ab.zip", b"zip", "application/zip").await;
        assert_eq!((sent.expect("there already"), upload.num_calls()), (false, 0));
        let denied = mock!(aws_sdk_s3::Client::head_object).then_error(|| HeadObjectError::generic(meta("Forbidden")));
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&denied, &upload]);
        let e = put_if_missing(&s3, BUCKET, "s1/ab.zip", b"zip", "application/zip").await.expect_err("denied");
        assert_eq!((e.code(), upload.num_calls()), (Some("Forbidden"), 0), "{e}");
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head_missing(), &upload]);
        let sent = put_if_missing(&s3, BUCKET, "s1/ab.zip", b"zip", "application/zip").await;
        assert_eq!((sent.expect("uploaded"), upload.num_calls()), (true, 1));
    }

    /// Every version and delete marker under a prefix, across pages (the next page asked from the
    /// markers the last one gave); a bucket that is gone is None, not an error; another refusal
    /// is the error.
    #[tokio::test]
    async fn versions_are_listed_across_pages() {
        use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsError;
        use aws_sdk_s3::types::DeleteMarkerEntry;
        let version = |k: &str, v: &str| ObjectVersion::builder().key(k).version_id(v).build();
        let first = mock!(aws_sdk_s3::Client::list_object_versions)
            .match_requests(|r| r.prefix() == Some("s1/") && r.key_marker().is_none())
            .then_output(move || {
                ListObjectVersionsOutput::builder()
                    .versions(version("s1/a.zip", "1"))
                    .versions(version("s1/a.zip", "2"))
                    .delete_markers(DeleteMarkerEntry::builder().key("s1/b.zip").version_id("3").build())
                    .is_truncated(true)
                    .next_key_marker("s1/b.zip")
                    .next_version_id_marker("3")
                    .build()
            });
        let second = mock!(aws_sdk_s3::Client::list_object_versions)
            .match_requests(|r| r.key_marker() == Some("s1/b.zip") && r.version_id_marker() == Some("3"))
            .then_output(move || {
                ListObjectVersionsOutput::builder().versions(version("s1/c.zip", "4")).is_truncated(false).build()
            });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&first, &second]);
        let listed = list_versions(&s3, BUCKET, Some("s1/")).await.expect("listed").expect("a bucket");
        let want = [("s1/a.zip", "1"), ("s1/a.zip", "2"), ("s1/b.zip", "3"), ("s1/c.zip", "4")]
            .map(|(k, v)| (k.to_string(), Some(v.to_string())));
        assert_eq!(listed, want);
        for (code, gone) in [("NoSuchBucket", true), ("AccessDenied", false)] {
            let answer = mock!(aws_sdk_s3::Client::list_object_versions)
                .then_error(move || ListObjectVersionsError::generic(meta(code)));
            let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&answer]);
            let listed = list_versions(&s3, BUCKET, None).await;
            assert_eq!(
                listed.as_ref().map(Option::is_none).map_err(Error::code),
                if gone { Ok(true) } else { Err(Some(code)) }
            );
        }
    }

    /// Another deploy of this account made the bucket a moment ago: it is ours all the same, and
    /// its public access is blocked; a name another account holds is the deploy's error.
    #[tokio::test]
    async fn a_bucket_made_meanwhile_by_this_account_is_used() {
        use aws_sdk_s3::operation::create_bucket::CreateBucketError;
        for (code, ok) in [("BucketAlreadyOwnedByYou", true), ("BucketAlreadyExists", false)] {
            let create =
                mock!(aws_sdk_s3::Client::create_bucket).then_error(move || CreateBucketError::generic(meta(code)));
            let [_, block] = make();
            let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&create, &block]);
            let made = make_bucket(&s3, "eu-central-1", BUCKET).await;
            assert_eq!(made.as_ref().map_err(Error::code).err(), (!ok).then_some(Some(code)), "{code}: {made:?}");
            assert_eq!(block.num_calls(), usize::from(ok), "{code}");
        }
    }
}
