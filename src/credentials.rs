//! The producer's access key in a local AWS credentials profile: written with mode 0600, read back
//! by `deploy` to tell whether the key is still current, removed by `destroy`. The secret is never
//! printed or logged; `AccessKey`'s Debug hides it. No AWS calls here.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Marks profiles written by `stream deploy`; others are never overwritten or removed.
const MARKER: &str = "# managed by `stream deploy`; removed by `stream destroy`";

/// An IAM access key pair.
#[derive(Clone)]
pub struct AccessKey {
    /// Access key id (not secret).
    pub id: String,
    /// Secret access key.
    pub secret: String,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// The shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`,
/// the same file the SDK reads for `--profile`.
pub fn credentials_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
        Error::config("HOME is not set: cannot find ~/.aws/credentials", "set HOME or AWS_SHARED_CREDENTIALS_FILE")
    })?;
    Ok(PathBuf::from(home).join(".aws").join("credentials"))
}

/// A profile section: its line range in the file and whether `stream` wrote it.
struct Section {
    start: usize,
    end: usize,
    managed: bool,
}

fn find_section(lines: &[&str], profile: &str) -> Option<Section> {
    let header = format!("[{profile}]");
    let start = lines.iter().position(|l| l.trim() == header)?;
    let end =
        lines[start + 1..].iter().position(|l| l.trim_start().starts_with('[')).map_or(lines.len(), |i| start + 1 + i);
    let managed = lines[start..end].iter().any(|l| l.trim() == MARKER);
    Some(Section { start, end, managed })
}

fn read_lines(path: &Path) -> Result<String, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

/// The access key id stored in `profile`, if the profile exists.
pub fn profile_key_id(path: &Path, profile: &str) -> Result<Option<String>, Error> {
    let text = read_lines(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let Some(section) = find_section(&lines, profile) else {
        return Ok(None);
    };
    Ok(lines[section.start + 1..section.end].iter().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "aws_access_key_id").then(|| v.trim().to_string())
    }))
}

/// Writes `key` as `profile`, replacing a profile `stream` wrote before; the file ends up 0600.
/// A profile of that name that `stream` did not write is left alone and reported.
pub fn write_profile(path: &Path, profile: &str, key: &AccessKey) -> Result<(), Error> {
    let text = read_lines(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let section = [
        format!("[{profile}]"),
        MARKER.to_string(),
        format!("aws_access_key_id = {}", key.id),
        format!("aws_secret_access_key = {}", key.secret),
    ];
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + section.len() + 1);
    match find_section(&lines, profile) {
        Some(s) if !s.managed => {
            return Err(Error::failed(
                format!("profile \"{profile}\" in {} exists and was not written by stream", path.display()),
                "rename or remove that profile, or deploy with another --stack name",
            ));
        }
        Some(s) => {
            out.extend(lines[..s.start].iter().map(|l| l.to_string()));
            out.extend(section.iter().cloned());
            out.extend(lines[s.end..].iter().map(|l| l.to_string()));
        }
        None => {
            out.extend(lines.iter().map(|l| l.to_string()));
            if out.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
            out.extend(section.iter().cloned());
        }
    }
    write_private(path, &out)
}

/// Removes `profile` if `stream` wrote it. Returns whether it was there.
pub fn remove_profile(path: &Path, profile: &str) -> Result<bool, Error> {
    let text = read_lines(path)?;
    let lines: Vec<&str> = text.lines().collect();
    match find_section(&lines, profile) {
        Some(s) if s.managed => {
            let out: Vec<String> = lines[..s.start].iter().chain(&lines[s.end..]).map(|l| l.to_string()).collect();
            write_private(path, &out)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Writes through a temporary file created 0600 in the same directory, then renames it over
/// `path`: the secret is never in a file others can read, and a crash leaves the old file whole.
fn write_private(path: &Path, lines: &[String]) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e| Error::io(path.display().to_string(), e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let tmp = dir.join(format!(".{}.stream-tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("credentials")));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
    let mut body = lines.join("\n");
    body.push('\n');
    file.write_all(body.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(id: &str) -> AccessKey {
        AccessKey { id: id.into(), secret: format!("secret-of-{id}") }
    }

    #[test]
    fn profile_is_written_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("aws").join("credentials");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n").expect("write");
        write_profile(&path, "s1", &key("AKIA1")).expect("write profile");
        assert_eq!(profile_key_id(&path, "s1").expect("read").as_deref(), Some("AKIA1"));
        assert_eq!(profile_key_id(&path, "default").expect("read").as_deref(), Some("D"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        write_profile(&path, "s1", &key("AKIA2")).expect("replace");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.matches("[s1]").count(), 1);
        assert!(text.contains("secret-of-AKIA2") && !text.contains("secret-of-AKIA1"));

        assert!(remove_profile(&path, "s1").expect("remove"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("[s1]") && text.contains("[default]"));
        assert!(!remove_profile(&path, "s1").expect("second remove is a no-op"));
    }

    #[test]
    fn foreign_profiles_are_never_overwritten_or_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[s1]\naws_access_key_id = MINE\n").expect("write");
        assert!(write_profile(&path, "s1", &key("AKIA1")).is_err());
        assert!(!remove_profile(&path, "s1").expect("remove"));
        assert_eq!(profile_key_id(&path, "s1").expect("read").as_deref(), Some("MINE"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", key("AKIA1"));
        assert!(shown.contains("AKIA1") && !shown.contains("secret-of"));
    }
}
