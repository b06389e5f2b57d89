//! A schema as a command is given it (`--schema NAME|FILE`): a built-in name or a TOML or JSON
//! file, compiled, kept with its text (what `deploy` stores and `schema show` prints).

use std::path::Path;
use std::sync::Arc;

use super::{BUILT_IN, Schema};
use crate::error::Error;
use crate::template;

/// A schema as given to a command: compiled, with the text it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The compiled schema.
    pub schema: Arc<Schema>,
    /// The file's text, as written (what `deploy` keeps and `schema show` prints).
    pub text: String,
    /// True for TOML, false for JSON.
    pub toml: bool,
    /// Where it came from: a path, or "built-in".
    pub origin: String,
}

impl Loaded {
    /// The file name the text is kept under: `schema.toml` or `schema.json`.
    pub fn file_name(&self) -> &'static str {
        if self.toml { "schema.toml" } else { "schema.json" }
    }
}

/// The built-in schema `name` as a `Loaded`.
pub fn built_in(name: &str) -> Option<Loaded> {
    let text = template::schema_file(name)?;
    let schema = Schema::parse(text, true).ok()?;
    Some(Loaded { schema: Arc::new(schema), text: text.to_string(), toml: true, origin: "built-in".into() })
}

/// Reads `--schema NAME|FILE`: a file (`.json` is JSON, anything else TOML), or a built-in name.
/// Every problem of the file is in the error, each as a line and a hint.
pub fn load(arg: &str) -> Result<Loaded, Error> {
    let path = Path::new(arg);
    if !path.exists() {
        return built_in(arg).ok_or_else(|| {
            Error::usage(
                format!("no schema file {arg} (and no built-in schema of that name)"),
                format!("give --schema a TOML or JSON schema file, or one of: {}", BUILT_IN.join(", ")),
            )
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("cannot read schema file {arg}: {e}"), "give --schema a readable TOML or JSON file")
    })?;
    let toml = path.extension().is_none_or(|e| e != "json");
    from_text(&text, toml, arg)
}

/// Compiles schema `text` from `origin` (a path, for messages).
pub fn from_text(text: &str, toml: bool, origin: &str) -> Result<Loaded, Error> {
    match Schema::parse(text, toml) {
        Ok(schema) => Ok(Loaded { schema: Arc::new(schema), text: text.to_string(), toml, origin: origin.to_string() }),
        Err(problems) => Err(Error::Problems {
            problems: problems.into_iter().map(|p| (format!("{origin}: {}", p.what), p.hint)).collect(),
        }),
    }
}
