//! The commit a build is made from, for `stream --version`: `git rev-parse` in the package's
//! directory, and the git files whose change means another commit, for cargo to watch. Plain std,
//! so that tests/it/build_script.rs compiles this file alone and runs its tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit in `dir` and the files cargo watches to run the build script again when it moves.
#[derive(Debug, Default)]
pub struct Commit {
    /// The short commit id, when `dir` is in a git checkout.
    pub id: Option<String>,
    /// Paths for `cargo::rerun-if-changed`.
    pub watch: Vec<PathBuf>,
}

/// `git ARGS` in `dir`: its trimmed output when it succeeds and says something.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads the commit of the checkout at `dir`. Only paths that exist are watched: cargo reruns a
/// build script on every build while one of its watched paths is missing (and then relinks the
/// binary, minutes with fat LTO).
pub fn read(dir: &Path) -> Commit {
    let Some(git_dir) = git(dir, &["rev-parse", "--git-dir"]) else { return Commit::default() };
    let id = git(dir, &["rev-parse", "--short=12", "HEAD"]);
    // HEAD holds the commit when detached, else the branch's name; in a worktree it is its own.
    let mut watch = vec![dir.join(git_dir).join("HEAD")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.extend(branch_ref(dir, &branch));
    }
    watch.retain(|p| p.exists());
    Commit { id, watch }
}

/// Where the commit of `branch` lives: its loose ref file, rewritten by each commit; or, for a
/// ref only in packed-refs, packed-refs and the directory the next commit writes the loose file
/// to (cargo watches a directory by the newest file in it).
fn branch_ref(dir: &Path, branch: &str) -> Vec<PathBuf> {
    let Some(loose) = git(dir, &["rev-parse", "--git-path", branch]).map(|p| dir.join(p)) else { return Vec::new() };
    if loose.is_file() {
        return vec![loose];
    }
    let mut out: Vec<PathBuf> =
        git(dir, &["rev-parse", "--git-path", "packed-refs"]).map(|p| dir.join(p)).into_iter().collect();
    out.extend(loose.ancestors().skip(1).find(|d| d.is_dir()).map(Path::to_path_buf));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// A fresh repository with one commit on `main`, in a directory of its own.
    fn repo(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stream-commit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        run(&dir, &["init", "-q", "-b", "main"]);
        commit(&dir, "first");
        dir
    }

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .status()
            .expect("git runs");
        assert!(ok.success(), "git {args:?}");
    }

    fn commit(dir: &Path, message: &str) {
        std::fs::write(dir.join("file"), message).expect("write");
        run(dir, &["add", "file"]);
        run(dir, &["commit", "-q", "-m", message]);
    }

    /// The newest change under the watched paths, as cargo sees it: a file's mtime, or the newest
    /// mtime of anything in a watched directory; a watched path that is gone counts as now.
    fn newest(watch: &[PathBuf]) -> SystemTime {
        fn walk(p: &Path) -> SystemTime {
            let Ok(meta) = std::fs::metadata(p) else { return SystemTime::now() };
            let own = meta.modified().expect("mtime");
            if !meta.is_dir() {
                return own;
            }
            std::fs::read_dir(p).expect("dir").map(|e| walk(&e.expect("entry").path())).fold(own, SystemTime::max)
        }
        watch.iter().map(|p| walk(p)).max().expect("something watched")
    }

    /// Cargo runs a build script again on every build while it watches a path that does not exist.
    fn assert_all_exist(watch: &[PathBuf]) {
        for p in watch {
            assert!(p.exists(), "watches {} which does not exist: cargo would rerun every build", p.display());
        }
    }

    /// A branch whose ref is a loose file: HEAD and that file are watched, nothing missing, and a
    /// commit changes what is watched (so the next build names the new commit).
    #[test]
    fn a_loose_branch_ref_is_watched_and_a_commit_moves_it() {
        let dir = repo("loose");
        let before = read(&dir);
        assert_all_exist(&before.watch);
        assert!(before.watch.iter().any(|p| p.ends_with("refs/heads/main")), "{:?}", before.watch);
        let seen = newest(&before.watch);
        std::thread::sleep(std::time::Duration::from_millis(20));
        commit(&dir, "second");
        assert!(newest(&before.watch) > seen, "a commit changes a watched path");
        assert_ne!(read(&dir).id, before.id);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A branch that lives only in packed-refs: packed-refs and the directory its loose ref will
    /// be written to are watched, and the next commit (a new loose ref) is seen.
    #[test]
    fn a_packed_branch_ref_is_watched_through_its_directory() {
        let dir = repo("packed");
        run(&dir, &["pack-refs", "--all"]);
        let before = read(&dir);
        assert_all_exist(&before.watch);
        assert!(before.watch.iter().any(|p| p.ends_with("packed-refs")), "{:?}", before.watch);
        let seen = newest(&before.watch);
        std::thread::sleep(std::time::Duration::from_millis(20));
        commit(&dir, "second");
        assert!(newest(&before.watch) > seen, "a commit changes a watched path");
        assert_ne!(read(&dir).id, before.id);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A detached HEAD holds the commit itself; outside a checkout nothing is watched.
    #[test]
    fn a_detached_head_and_no_checkout() {
        let dir = repo("detached");
        run(&dir, &["checkout", "-q", "--detach"]);
        let c = read(&dir);
        assert_all_exist(&c.watch);
        assert!(c.watch.iter().any(|p| p.ends_with("HEAD")), "{:?}", c.watch);
        std::fs::remove_dir_all(dir.join(".git")).expect("remove .git");
        let none = read(&dir);
        assert!(none.id.is_none() && none.watch.is_empty(), "{none:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
