//! The `status json` document as this command reads it: the documented
//! schema 1 (`{"schema": 1, "generation": G, "nodes": [NODE, ...]}`), read
//! leniently (fields it does not know are ignored, optional ones may be
//! missing), so that a tree a little newer or older than this command is
//! still shown.

use serde::Deserialize;

/// The schema this command reads.
pub const SCHEMA: u64 = 1;

/// The whole document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusDoc {
    /// Its schema: [`SCHEMA`].
    pub schema: u64,
    /// The tree's generation (one more after each upgrade).
    #[serde(default)]
    pub generation: u64,
    /// Every node, in tree order, the root first.
    pub nodes: Vec<Node>,
}

/// One supervisor, worker or worker host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Node {
    /// `root`, `root/1/0`, `root/1/host`, ...
    pub path: String,
    /// `supervisor`, `worker` or `host`.
    pub kind: String,
    /// Its process, while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// `starting`, `running`, `ready`, `restarting`, `stopping`,
    /// `stopped` or `failed`.
    pub state: String,
    /// `up`, or `down` once an operator stopped it.
    #[serde(default = "up")]
    pub wanted: String,
    /// How many times it was restarted.
    #[serde(default)]
    pub restarts: u64,
    /// How it ended last time.
    #[serde(default)]
    pub last_exit: Option<LastExit>,
    /// How long it has been up, in milliseconds.
    #[serde(default)]
    pub up_ms: Option<u64>,
    /// A limited subtree's memory in use.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

fn up() -> String {
    "up".to_owned()
}

/// How a node ended last time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LastExit {
    /// How: `exited 1`, `panicked`, `killed by SIGKILL`, ...
    pub exit: String,
    /// Why, where known (a panic's message).
    #[serde(default)]
    pub reason: Option<serde_json::Value>,
}

impl LastExit {
    /// `exit` and its reason, as one line.
    pub fn text(&self) -> String {
        match &self.reason {
            Some(serde_json::Value::String(reason)) => format!("{}: {reason}", self.exit),
            Some(serde_json::Value::Null) | None => self.exit.clone(),
            Some(other) => format!("{}: {other}", self.exit),
        }
    }
}

impl Node {
    /// How deep it is: 0 for the root.
    pub fn depth(&self) -> usize {
        self.path.matches('/').count()
    }

    /// Whether an operator stopped it (it is wanted down).
    pub fn held(&self) -> bool {
        self.wanted == "down"
    }
}

impl StatusDoc {
    /// Reads the document `text`.
    ///
    /// # Errors
    ///
    /// What is wrong with it: no JSON, not this schema.
    pub fn parse(text: &str) -> Result<StatusDoc, String> {
        let doc: StatusDoc = serde_json::from_str(text)
            .map_err(|err| format!("the tree's status is no status document: {err}"))?;
        if doc.schema != SCHEMA {
            return Err(format!(
                "the tree's status has schema {}; this command reads schema {SCHEMA}",
                doc.schema
            ));
        }
        Ok(doc)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A document of the documented form.
    pub(crate) const SAMPLE: &str = r#"{"schema": 1, "generation": 2, "nodes": [
        {"path": "root", "kind": "supervisor", "pid": 100, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 5000},
        {"path": "root/host", "kind": "host", "pid": 101, "state": "running", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 4900},
        {"path": "root/0", "kind": "worker", "pid": 101, "state": "ready", "wanted": "up", "restarts": 2, "last_exit": {"exit": "panicked", "reason": "boom"}, "up_ms": 300},
        {"path": "root/1", "kind": "supervisor", "pid": 102, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 4800,
         "limits": {"memory_max": 67108864}, "memory_bytes": 12582912, "future_field": [1, 2]},
        {"path": "root/1/host", "kind": "host", "pid": 103, "state": "running", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 4700},
        {"path": "root/1/0", "kind": "worker", "pid": 103, "state": "ready", "wanted": "up", "restarts": 0, "last_exit": null, "up_ms": 4700},
        {"path": "root/1/1", "kind": "worker", "pid": null, "state": "stopped", "wanted": "down", "restarts": 0, "last_exit": {"exit": "stopped", "reason": null}, "up_ms": null}
    ]}"#;

    #[test]
    fn the_documented_form_reads() {
        let doc = StatusDoc::parse(SAMPLE).expect("a document");
        assert_eq!((doc.schema, doc.generation, doc.nodes.len()), (1, 2, 7));
        let limited = &doc.nodes[3];
        assert_eq!(limited.memory_bytes, Some(12 << 20));
        assert_eq!(limited.depth(), 1);
        assert_eq!(
            doc.nodes[2]
                .last_exit
                .as_ref()
                .map(LastExit::text)
                .as_deref(),
            Some("panicked: boom")
        );
        assert!(doc.nodes[6].held());
        assert_eq!(
            doc.nodes[6]
                .last_exit
                .as_ref()
                .map(LastExit::text)
                .as_deref(),
            Some("stopped")
        );
    }

    #[test]
    fn missing_optional_fields_are_defaults_and_other_schemas_are_refused() {
        let doc = StatusDoc::parse(
            r#"{"schema": 1, "nodes": [{"path": "root", "kind": "supervisor", "state": "starting"}]}"#,
        )
        .expect("a small document");
        let root = &doc.nodes[0];
        assert_eq!(
            (root.pid, root.wanted.as_str(), root.restarts),
            (None, "up", 0)
        );
        let err = StatusDoc::parse(r#"{"schema": 2, "nodes": []}"#).expect_err("schema 2");
        assert!(err.contains("schema 2"), "{err}");
        assert!(StatusDoc::parse("root  supervisor  ready").is_err());
    }
}
